"""Every event type the product writes, named once.

Emitters pass these members, readers compare with them; a member *is* its
string (``EventType.MEASUREMENT == "Measurement"``), so events stay plain JSON
and third-party types (any other string) remain welcome.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["EventType"]


class EventType(StrEnum):
    """The ``type`` of an event line (see docs/events.md for each one's fields)."""

    SESSION_STARTED = "SessionStarted"
    SESSION_ENDED = "SessionEnded"
    LOCK_ACQUIRED = "LockAcquired"
    LOCK_CONTENDED = "LockContended"
    LOCK_RELEASED = "LockReleased"
    INSTRUMENT_CONNECTED = "InstrumentConnected"
    INSTRUMENT_CALL = "InstrumentCall"
    INSTRUMENT_CONFIGURE = "InstrumentConfigure"
    INSTRUMENT_DISCONNECTED = "InstrumentDisconnected"
    MEASUREMENT = "Measurement"
    OBSERVATION = "Observation"
    ATTACHMENT = "Attachment"
    SRQ_WAIT = "SrqWait"
    TEST_STARTED = "TestStarted"
    TEST_OUTCOME = "TestOutcome"
    SYNC_ARRIVED = "SyncArrived"
    SYNC_RELEASED = "SyncReleased"
    SERVER_STARTED = "InstrumentServerStarted"
    SERVER_STOPPED = "InstrumentServerStopped"
    CLIENT_CONNECTED = "InstrumentClientConnected"
    CLIENT_DISCONNECTED = "InstrumentClientDisconnected"
    CLIENT_REFUSED = "InstrumentClientRefused"
    EVENTS_LOST = "EventsLost"
    UNIT_STARTED = "UnitStarted"
    PROMPT_ASKED = "PromptAsked"
    PROMPT_ANSWERED = "PromptAnswered"
    PROMPT_EXPIRED = "PromptExpired"
