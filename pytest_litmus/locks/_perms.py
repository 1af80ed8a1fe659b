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

_GROUP_BITS = {"r": stat.S_IRGRP, "w": stat.S_IWGRP, "x": stat.S_IXGRP}
_WORDS = {"r": "readable", "w": "writable", "x": "searchable"}


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


def denied(path: str, action: str, need: str = "w", *, victim: str | None = None, note: str = "") -> AccessDenied:
    """An :class:`AccessDenied` for ``action`` refused on ``path``.

    ``need``: what the operation needed of ``path``: ``r``, ``w`` or ``x``
    (enter a directory). ``victim``: a file inside directory ``path`` that was
    to be removed or replaced (the sticky bit makes that depend on the file's
    owner). ``note`` is added to the hint. If ``path`` itself cannot be
    examined, the directory above it that refuses entry is named instead.
    """
    me = current_user()
    try:
        st = os.stat(path)
    except PermissionError:  # a directory on the way refuses us entry: that one is the problem
        parent = os.path.dirname(path)
        if parent and parent != path:
            return denied(parent, "enter the directory", "x", note=note)
        return AccessDenied(path, action, user=me, hint=_with("ask the data dir's owner or root", note))
    except OSError:
        return AccessDenied(path, action, user=me, hint=_with("ask the data dir's owner or root", note))
    euid = os.geteuid()
    victim_st = _lstat(victim) if victim is not None else None
    if (
        victim is not None
        and victim_st is not None
        and st.st_mode & stat.S_ISVTX
        and victim_st.st_uid not in (euid, st.st_uid)
    ):
        owner = user_name(victim_st.st_uid)
        hint = f"{path} is sticky: only {owner}, the directory's owner or root may remove or replace it"
        return AccessDenied(
            victim,
            action,
            owner=owner,
            group=group_name(victim_st.st_gid),
            mode=f"{stat.S_IMODE(victim_st.st_mode):04o}",
            user=me,
            hint=_with(hint, note),
        )
    owner, group = user_name(st.st_uid), group_name(st.st_gid)
    mode = f"{stat.S_IMODE(st.st_mode):04o}"
    is_dir = stat.S_ISDIR(st.st_mode)
    shared = bool(st.st_mode & stat.S_ISGID) or bool(st.st_mode & stat.S_IWGRP)
    group_bit = _GROUP_BITS.get(need, stat.S_IWGRP)
    if st.st_uid == euid:
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
    return AccessDenied(path, action, owner=owner, group=group, mode=mode, user=me, hint=_with(hint, note))


def _with(hint: str, note: str) -> str:
    return f"{hint}; {note}" if note else hint


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except OSError:
        return None
