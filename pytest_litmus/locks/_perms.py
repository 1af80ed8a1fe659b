"""Permission problems of a data dir shared by several users, turned into errors that say what to do.

The file system refuses an operation with a bare ``PermissionError``; on a
shared station that means "another user's file or directory". :func:`denied`
looks at the refused path (owner, group, mode, sticky bit) and at who we are
(user, groups) and builds an :class:`~pytest_litmus.errors.AccessDenied`
naming the path, its owner and the fix: join the group, make the directory
group-writable and setgid, or ask the owner or root.
"""

from __future__ import annotations

import os
import stat

from pytest_litmus.errors import AccessDenied
from pytest_litmus.processes import current_user, group_name, user_name

__all__ = ["denied", "existing"]

_GROUP_BITS = {"r": stat.S_IRGRP, "w": stat.S_IWGRP}
_WORDS = {"r": "readable", "w": "writable"}


def existing(path: str) -> str:
    """``path``, or its nearest ancestor that exists (the directory that refused a ``mkdir``)."""
    path = os.path.abspath(path)
    while not os.path.lexists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def _my_groups() -> set[int]:
    return set(os.getgroups()) | {os.getegid()}


def denied(path: str, action: str, need: str = "w", *, victim: str | None = None) -> AccessDenied:
    """An :class:`AccessDenied` for ``action`` refused on ``path``.

    ``need``: what the operation needed of ``path``, ``r`` or ``w``.
    ``victim``: a file inside directory ``path`` that was to be removed or
    replaced (the sticky bit makes that depend on the file's owner).
    """
    me = current_user()
    try:
        st = os.stat(path)
    except OSError:
        return AccessDenied(path, action, user=me, hint="ask the data dir's owner or root to check its permissions")
    owner, group = user_name(st.st_uid), group_name(st.st_gid)
    mode = f"{stat.S_IMODE(st.st_mode):04o}"
    is_dir = stat.S_ISDIR(st.st_mode)
    shared = bool(st.st_mode & stat.S_ISGID) or bool(st.st_mode & stat.S_IWGRP)
    group_bit = _GROUP_BITS.get(need, stat.S_IWGRP)
    euid = os.geteuid()
    hint: str
    if victim is not None and st.st_mode & stat.S_ISVTX and _owner_of(victim) not in (euid, None, st.st_uid):
        victim_owner = user_name(_owner_of(victim) or 0)
        path, action = victim, f"{action} (the directory is sticky)"
        owner = victim_owner
        hint = f"only {victim_owner}, the directory's owner or root may remove or replace it"
    elif st.st_uid == euid:
        hint = f"it is yours: chmod u+{need} {path}"
    elif st.st_gid in _my_groups():
        if st.st_mode & group_bit:
            hint = f"ask {owner} or root to check it"
        elif is_dir:
            hint = f"make it group-writable and setgid: as {owner} or root, chmod 2775 {path}"
        else:
            hint = f"make it group-{_WORDS.get(need, 'writable')}: as {owner} or root, chmod g+rw {path}"
    elif shared and group != owner:
        hint = f"add user {me} to group {group} (then log in again)"
    else:
        hint = (
            f"it is {owner}'s alone: set the data dir up for several users (a shared group, "
            f"chgrp -R GROUP DIR && chmod 2775 on its directories), as {owner} or root"
        )
    return AccessDenied(path, action, owner=owner, group=group, mode=mode, user=me, hint=hint)


def _owner_of(path: str) -> int | None:
    try:
        return os.lstat(path).st_uid
    except OSError:
        return None
