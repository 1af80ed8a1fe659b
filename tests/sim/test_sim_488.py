"""IEEE 488.2 corner cases the simulator gets right, through plain PyVISA: held parser,
-410, -350, CR LF termination, binary blocks both ways, non-ASCII input."""

from __future__ import annotations

import threading
from typing import Any, ClassVar

import pytest
from pyvisa import constants
from pyvisa.errors import VisaIOError

from tests.sim.conftest import GPIB, LAN

QYE, CME = 0x04, 0x20
TIMEOUT = constants.StatusCode.error_timeout


def errors(dmm: Any) -> list[str]:
    """Drain the error queue."""
    found = []
    while (line := dmm.query("SYST:ERR?")) != '0,"No error"':
        found.append(line)
    return found


def timed_out(call: Any) -> bool:
    try:
        call()
    except VisaIOError as exc:
        assert exc.error_code == TIMEOUT
        return True
    return False


# -- *WAI holds the parser, not the controller ----------------------------------


def test_wai_returns_at_once_and_the_next_query_times_out_without_a_query_error(dmm: Any) -> None:
    dmm.write("CAL:SLOW")  # an hour
    write_returns(dmm, "*WAI")  # the parser is held, not the controller
    dmm.timeout = 50
    assert timed_out(lambda: dmm.query("*IDN?"))
    dmm.clear()  # device clear abandons the held input and the operation
    dmm.timeout = 2000
    assert int(dmm.query("*ESR?")) & QYE == 0, "the answer was held, not missing: no query error"
    assert dmm.query("*IDN?") == "LITMUS,SIM-DMM,0,1.0"


class HandTimer(threading.Thread):
    """Stands in for ``threading.Timer``: the operation completes when the test says so."""

    made: ClassVar[list[HandTimer]] = []

    def __init__(self, _interval: float, function: Any, args: Any = ()) -> None:
        super().__init__(target=function, args=args, daemon=True)
        HandTimer.made.append(self)

    def start(self) -> None:
        pass

    def cancel(self) -> None:
        pass

    def fire(self) -> None:
        threading.Thread.start(self)
        self.join()


@pytest.fixture
def hand_timers(monkeypatch: pytest.MonkeyPatch) -> list[HandTimer]:
    HandTimer.made = []
    monkeypatch.setattr(threading, "Timer", HandTimer)
    return HandTimer.made


def write_returns(dmm: Any, message: str) -> None:
    writer = threading.Thread(target=dmm.write, args=(message,), daemon=True)
    writer.start()
    writer.join(timeout=30)
    assert not writer.is_alive(), f"write({message!r}) blocked"


def test_a_held_query_answers_once_the_operation_completes(dmm: Any, hand_timers: list[HandTimer]) -> None:
    device = dmm.visalib.device(GPIB)
    write_returns(dmm, "INIT;*WAI;*IDN?")  # the rest of the message waits too
    assert not device.has_output() and device.awaiting(device.BUS)
    hand_timers[0].fire()
    assert dmm.read() == "LITMUS,SIM-DMM,0,1.0"
    assert errors(dmm) == []


def test_a_second_wai_in_held_input_holds_again(dmm: Any, hand_timers: list[HandTimer]) -> None:
    device = dmm.visalib.device(GPIB)
    write_returns(dmm, "INIT;*WAI;INIT;*WAI;READ?")
    hand_timers[0].fire()
    assert len(hand_timers) == 2 and not device.has_output(), "the second INIT holds the parser again"
    hand_timers[1].fire()
    assert dmm.read() == "1.234567"
    assert dmm.query("*ESR?") == "0"


def test_held_messages_are_parsed_in_order_when_released(dmm: Any, hand_timers: list[HandTimer]) -> None:
    write_returns(dmm, "INIT;*WAI;*IDN?")
    write_returns(dmm, "VOLT:RANG?")  # a later message waits behind it, and then interrupts *IDN?'s answer
    hand_timers[0].fire()
    assert dmm.read() == "10"
    assert errors(dmm) == ['-410,"Query INTERRUPTED"']


def test_a_read_with_nothing_held_after_wai_is_a_query_error(dmm: Any) -> None:
    dmm.write("CAL:SLOW;*WAI")
    dmm.timeout = 50
    assert timed_out(dmm.read), "nothing was asked: the read times out"
    dmm.clear()
    dmm.timeout = 2000
    assert int(dmm.query("*ESR?")) & QYE


def test_held_input_of_a_closed_session_is_dropped(rm: Any) -> None:
    first = rm.open_resource(GPIB, read_termination="\n", write_termination="\n", timeout=2000)
    first.write("INIT;*WAI")
    first.write("*IDN?")
    first.close()
    second = rm.open_resource(GPIB, read_termination="\n", write_termination="\n", timeout=2000)
    assert second.query("*OPC?") == "1"
    assert second.query("VOLT:RANG?") == "10"


# -- -410 Query INTERRUPTED -------------------------------------------------


def test_a_new_message_with_a_response_unread_is_query_interrupted(dmm: Any) -> None:
    dmm.write("*IDN?")
    assert dmm.query("VOLT:RANG?") == "10", "the old answer is discarded, not returned"
    assert int(dmm.query("*ESR?")) == QYE
    assert errors(dmm) == ['-410,"Query INTERRUPTED"']


def test_a_partly_read_response_is_interrupted_too(dmm: Any) -> None:
    dmm.write("*IDN?")
    assert dmm.read_bytes(3) == b"LIT"
    assert dmm.query("VOLT:RANG?") == "10"
    assert errors(dmm) == ['-410,"Query INTERRUPTED"']


def test_the_files_error_text_is_not_a_response_to_interrupt(dmm: Any) -> None:
    dmm.write("BOGUS")  # the file answers ERROR, which a real instrument would not send
    assert dmm.query("*IDN?") == "LITMUS,SIM-DMM,0,1.0"
    assert errors(dmm) == ['-113,"Undefined header"']


def test_query_interrupted_is_per_channel(rm: Any) -> None:
    device = rm.visalib.device(GPIB)
    with device.cond:
        device.select("other")  # another connection (the emulator gives each its own)
        device.write(b"*IDN?\n")
        device.select(device.BUS)
    dmm = rm.open_resource(GPIB, read_termination="\n", write_termination="\n")
    assert dmm.query("VOLT:RANG?") == "10"
    assert device.take_message("other") == b"LITMUS,SIM-DMM,0,1.0\n"
    dmm.write("*IDN?")
    assert dmm.query("VOLT:RANG?") == "10"
    assert errors(dmm) == ['-410,"Query INTERRUPTED"']


# -- -350 Queue overflow ------------------------------------------------------


def test_a_full_error_queue_keeps_the_oldest_and_ends_with_queue_overflow(dmm: Any) -> None:
    for n in range(19):
        dmm.write(f"BOGUS{n}")
    dmm.write("VOLT:RANG 5000")  # the 20th: fits
    dmm.write("*ESE 1000")  # the 21st and 22nd: lost, the last entry becomes -350
    dmm.write("*ESE 1000")
    found = errors(dmm)
    assert len(found) == 20
    assert found[:19] == ['-113,"Undefined header"'] * 19
    assert found[19] == '-350,"Queue overflow"'


# -- terminations -----------------------------------------------------------


@pytest.mark.parametrize("termination", ["\r\n", " \n", "\t\r\n"])
def test_trailing_whitespace_before_the_terminator_is_accepted(rm: Any, termination: str) -> None:
    dmm = rm.open_resource(GPIB, read_termination="\n", write_termination=termination, timeout=500)
    assert dmm.query("*IDN?") == "LITMUS,SIM-DMM,0,1.0"
    assert dmm.query("*ESR?") == "0"


def test_an_empty_unit_is_no_command(dmm: Any) -> None:
    dmm.write(";*CLS;;")
    dmm.write("")
    assert dmm.query("*ESR?") == "0"


# -- binary blocks ------------------------------------------------------------

AWKWARD = [0, 10, 59, 0x0A0A, 0x3B0A, -1, 35]  # newline, ';' and '#' bytes inside the payload


@pytest.mark.parametrize("resource", [GPIB, LAN])
def test_a_block_written_is_answered_by_its_query(rm: Any, resource: str) -> None:
    dmm = rm.open_resource(resource, read_termination="\n", write_termination="\n", timeout=2000)
    dmm.write_binary_values("CURV ", AWKWARD, datatype="h")
    assert dmm.query_binary_values("CURV?", datatype="h") == AWKWARD
    assert errors(dmm) == []


def test_a_large_block_with_a_header_of_several_digits(dmm: Any) -> None:
    values = list(range(-5000, 5000))
    dmm.write_binary_values("WAV:DATA ", values, datatype="i")
    assert dmm.query_binary_values("WAV:DATA?", datatype="i") == values


def test_an_indefinite_block_ends_at_the_end_of_the_message(dmm: Any) -> None:
    dmm.write_raw(b"DATA #0a;b\nc\n")
    assert dmm.query_binary_values("DATA?", datatype="c") == [b"a", b";", b"b", b"\n", b"c"]
    assert errors(dmm) == []


def test_a_block_arriving_in_pieces_waits_for_its_bytes(dmm: Any) -> None:
    dmm.write_raw(b"DATA #16ab\n")  # the newline is payload: 3 bytes still to come
    dmm.write_raw(b"c\nd;*IDN?\n")
    assert dmm.read() == "LITMUS,SIM-DMM,0,1.0"
    assert dmm.query_binary_values("DATA?", datatype="c") == [b"a", b"b", b"\n", b"c", b"\n", b"d"]


def test_units_around_a_block_still_run(dmm: Any) -> None:
    dmm.write_raw(b"*CLS;DATA #13;;;;*IDN?\n")
    assert dmm.read() == "LITMUS,SIM-DMM,0,1.0"
    assert dmm.query_binary_values("DATA?", datatype="c") == [b";", b";", b";"]


def test_a_file_block_answer(tmp_path: Any) -> None:
    from pytest_litmus.sim import resource_manager

    path = tmp_path / "scope.yaml"
    path.write_text(
        'spec: "1.1"\ndevices:\n  scope:\n    eom: {GPIB INSTR: {q: "\\n", r: "\\n"}}\n'
        "    litmus:\n      blocks:\n"
        '        "CURV?": {datatype: h, values: [1, -2, 2570]}\n'
        '        "RAW?": {hex: "0a3b23"}\n'
        '        "B64?": {base64: "AAEC"}\n'
        "resources:\n  GPIB0::5::INSTR: {device: scope}\n"
    )
    scope = resource_manager(path).open_resource("GPIB0::5::INSTR", read_termination="\n", write_termination="\n")
    assert scope.query_binary_values("CURV?", datatype="h") == [1, -2, 2570]
    assert scope.query_binary_values("curv?", datatype="h") == [1, -2, 2570], "headers are case-insensitive"
    assert scope.query_binary_values("RAW?", datatype="B") == [10, 59, 35]
    assert scope.query_binary_values("B64?", datatype="B") == [0, 1, 2]
    scope.write_binary_values("CURV ", [7], datatype="h")
    assert scope.query_binary_values("CURV?", datatype="h") == [7], "a block received replaces the file's"


@pytest.mark.parametrize(
    ("raw", "detail"),
    [
        (b"DATA #2x1ab\n", "length 'x1' is not 2 digits"),
        (b"DATA #\xff1a\n", None),  # '#' then a non-digit: not a block; the 0xff is an invalid character
        (b"DATA #12abc\n", "1 bytes past the declared length 2"),
        (b"DATA #3\n", "length '' is not 3 digits"),
        (b"DATA #9999999999\n", "length 999999999 over the limit 16777216"),
        (b"#13abc\n", "no header"),
    ],
)
def test_a_malformed_block_is_a_command_error_never_an_exception(dmm: Any, raw: bytes, detail: str | None) -> None:
    dmm.write_raw(raw)
    assert int(dmm.query("*ESR?")) & CME
    expected = '-101,"Invalid character"' if detail is None else f'-161,"Invalid block data;{detail}"'
    assert errors(dmm) == [expected]
    assert dmm.query("*IDN?") == "LITMUS,SIM-DMM,0,1.0", "the parser is still sane"


# -- bytes >= 0x80 --------------------------------------------------------------


@pytest.mark.parametrize("raw", [b"\xff\xfe*IDN?\n", b"VOLT:RANG \xe9\n", "MESS ÄÖ\n".encode(), b"\x80\n"])
def test_bytes_over_0x7f_outside_a_block_are_an_invalid_character(dmm: Any, raw: bytes) -> None:
    dmm.write_raw(raw)
    assert errors(dmm) == ['-101,"Invalid character"']
    assert dmm.query("*ESR?") == str(CME)
    assert dmm.query("VOLT:RANG?") == "10"


def test_non_ascii_commands_the_file_defines_are_matched(tmp_path: Any) -> None:
    from pytest_litmus.sim import resource_manager

    path = tmp_path / "meter.yaml"
    path.write_text(
        'spec: "1.1"\ndevices:\n  m:\n    eom: {GPIB INSTR: {q: "\\n", r: "\\n"}}\n'
        '    dialogues:\n      - {q: "UNIT? µ", r: "µV"}\n'
        "resources:\n  GPIB0::5::INSTR: {device: m}\n",
        encoding="utf-8",
    )
    meter = resource_manager(path).open_resource("GPIB0::5::INSTR", read_termination="\n", write_termination="\n")
    meter.encoding = "utf-8"
    assert meter.query("UNIT? µ") == "µV"
    meter.write_raw(b"UNIT? \xb5\n")  # latin-1, not UTF-8: no match attempted
    assert meter.query("*ESR?") == str(CME)
    assert meter.query("SYST:ERR?") == '-101,"Invalid character"'


def test_wai_is_cheap_to_leave(dmm: Any) -> None:
    """A held parser costs nothing once released: the device is back on the unchecked path."""
    device = dmm.visalib.device(GPIB)
    dmm.write("INIT;*WAI;*IDN?")
    assert dmm.read() == "LITMUS,SIM-DMM,0,1.0"  # released on the timer thread, before the answer is queued
    assert not device.hooked
