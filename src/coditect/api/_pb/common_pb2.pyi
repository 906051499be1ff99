# ruff: noqa
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class Task(_message.Message):
    __slots__ = ("id", "intent", "description", "depends_on", "priority", "target_files", "capability", "state", "error", "worker", "attempt")
    ID_FIELD_NUMBER: _ClassVar[int]
    INTENT_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    DEPENDS_ON_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    TARGET_FILES_FIELD_NUMBER: _ClassVar[int]
    CAPABILITY_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    WORKER_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    id: str
    intent: str
    description: str
    depends_on: _containers.RepeatedScalarFieldContainer[str]
    priority: int
    target_files: _containers.RepeatedScalarFieldContainer[str]
    capability: str
    state: str
    error: str
    worker: str
    attempt: int
    def __init__(self, id: _Optional[str] = ..., intent: _Optional[str] = ..., description: _Optional[str] = ..., depends_on: _Optional[_Iterable[str]] = ..., priority: _Optional[int] = ..., target_files: _Optional[_Iterable[str]] = ..., capability: _Optional[str] = ..., state: _Optional[str] = ..., error: _Optional[str] = ..., worker: _Optional[str] = ..., attempt: _Optional[int] = ...) -> None: ...
