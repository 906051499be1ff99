# ruff: noqa
from coditect.api._pb import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EnqueueRequest(_message.Message):
    __slots__ = ("mission_id", "task", "body_json", "attempt")
    MISSION_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    BODY_JSON_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    mission_id: str
    task: _common_pb2.Task
    body_json: str
    attempt: int
    def __init__(self, mission_id: _Optional[str] = ..., task: _Optional[_Union[_common_pb2.Task, _Mapping]] = ..., body_json: _Optional[str] = ..., attempt: _Optional[int] = ...) -> None: ...

class EnqueueResponse(_message.Message):
    __slots__ = ("message_id", "duplicate")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    duplicate: bool
    def __init__(self, message_id: _Optional[str] = ..., duplicate: _Optional[bool] = ...) -> None: ...

class LeaseRequest(_message.Message):
    __slots__ = ("capabilities", "worker", "wait_s")
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    WORKER_FIELD_NUMBER: _ClassVar[int]
    WAIT_S_FIELD_NUMBER: _ClassVar[int]
    capabilities: _containers.RepeatedScalarFieldContainer[str]
    worker: str
    wait_s: float
    def __init__(self, capabilities: _Optional[_Iterable[str]] = ..., worker: _Optional[str] = ..., wait_s: _Optional[float] = ...) -> None: ...

class LeaseResponse(_message.Message):
    __slots__ = ("found", "lease_id", "mission_id", "task_id", "capability", "body_json", "delivery", "trace_headers")
    class TraceHeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    FOUND_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    MISSION_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    CAPABILITY_FIELD_NUMBER: _ClassVar[int]
    BODY_JSON_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_FIELD_NUMBER: _ClassVar[int]
    TRACE_HEADERS_FIELD_NUMBER: _ClassVar[int]
    found: bool
    lease_id: str
    mission_id: str
    task_id: str
    capability: str
    body_json: str
    delivery: int
    trace_headers: _containers.ScalarMap[str, str]
    def __init__(self, found: _Optional[bool] = ..., lease_id: _Optional[str] = ..., mission_id: _Optional[str] = ..., task_id: _Optional[str] = ..., capability: _Optional[str] = ..., body_json: _Optional[str] = ..., delivery: _Optional[int] = ..., trace_headers: _Optional[_Mapping[str, str]] = ...) -> None: ...

class CompleteRequest(_message.Message):
    __slots__ = ("mission_id", "task_id", "worker", "result_json", "lease_id", "commit", "files", "attempt")
    MISSION_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    WORKER_FIELD_NUMBER: _ClassVar[int]
    RESULT_JSON_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    COMMIT_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    mission_id: str
    task_id: str
    worker: str
    result_json: str
    lease_id: str
    commit: str
    files: _containers.RepeatedCompositeFieldContainer[FileEntry]
    attempt: int
    def __init__(self, mission_id: _Optional[str] = ..., task_id: _Optional[str] = ..., worker: _Optional[str] = ..., result_json: _Optional[str] = ..., lease_id: _Optional[str] = ..., commit: _Optional[str] = ..., files: _Optional[_Iterable[_Union[FileEntry, _Mapping]]] = ..., attempt: _Optional[int] = ...) -> None: ...

class FailRequest(_message.Message):
    __slots__ = ("mission_id", "task_id", "worker", "error", "retryable", "lease_id", "attempt")
    MISSION_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    WORKER_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    RETRYABLE_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    mission_id: str
    task_id: str
    worker: str
    error: str
    retryable: bool
    lease_id: str
    attempt: int
    def __init__(self, mission_id: _Optional[str] = ..., task_id: _Optional[str] = ..., worker: _Optional[str] = ..., error: _Optional[str] = ..., retryable: _Optional[bool] = ..., lease_id: _Optional[str] = ..., attempt: _Optional[int] = ...) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ("mission_id", "task_id", "worker", "lease_id")
    MISSION_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    WORKER_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    mission_id: str
    task_id: str
    worker: str
    lease_id: str
    def __init__(self, mission_id: _Optional[str] = ..., task_id: _Optional[str] = ..., worker: _Optional[str] = ..., lease_id: _Optional[str] = ...) -> None: ...

class Ack(_message.Message):
    __slots__ = ("ok",)
    OK_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    def __init__(self, ok: _Optional[bool] = ...) -> None: ...

class GetTasksRequest(_message.Message):
    __slots__ = ("mission_id",)
    MISSION_ID_FIELD_NUMBER: _ClassVar[int]
    mission_id: str
    def __init__(self, mission_id: _Optional[str] = ...) -> None: ...

class TaskStatus(_message.Message):
    __slots__ = ("task", "result_json", "commit")
    TASK_FIELD_NUMBER: _ClassVar[int]
    RESULT_JSON_FIELD_NUMBER: _ClassVar[int]
    COMMIT_FIELD_NUMBER: _ClassVar[int]
    task: _common_pb2.Task
    result_json: str
    commit: str
    def __init__(self, task: _Optional[_Union[_common_pb2.Task, _Mapping]] = ..., result_json: _Optional[str] = ..., commit: _Optional[str] = ...) -> None: ...

class GetTasksResponse(_message.Message):
    __slots__ = ("tasks",)
    TASKS_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[TaskStatus]
    def __init__(self, tasks: _Optional[_Iterable[_Union[TaskStatus, _Mapping]]] = ...) -> None: ...

class WorldModelQuery(_message.Message):
    __slots__ = ("mission_id", "glob")
    MISSION_ID_FIELD_NUMBER: _ClassVar[int]
    GLOB_FIELD_NUMBER: _ClassVar[int]
    mission_id: str
    glob: str
    def __init__(self, mission_id: _Optional[str] = ..., glob: _Optional[str] = ...) -> None: ...

class FileEntry(_message.Message):
    __slots__ = ("path", "size", "sha256", "mtime_ns")
    PATH_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    MTIME_NS_FIELD_NUMBER: _ClassVar[int]
    path: str
    size: int
    sha256: str
    mtime_ns: int
    def __init__(self, path: _Optional[str] = ..., size: _Optional[int] = ..., sha256: _Optional[str] = ..., mtime_ns: _Optional[int] = ...) -> None: ...

class WorldModelSnapshot(_message.Message):
    __slots__ = ("files",)
    FILES_FIELD_NUMBER: _ClassVar[int]
    files: _containers.RepeatedCompositeFieldContainer[FileEntry]
    def __init__(self, files: _Optional[_Iterable[_Union[FileEntry, _Mapping]]] = ...) -> None: ...

class CancelTasksRequest(_message.Message):
    __slots__ = ("mission_id", "reason")
    MISSION_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    mission_id: str
    reason: str
    def __init__(self, mission_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class Checkpoint(_message.Message):
    __slots__ = ("mission_id", "state_json")
    MISSION_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_JSON_FIELD_NUMBER: _ClassVar[int]
    mission_id: str
    state_json: str
    def __init__(self, mission_id: _Optional[str] = ..., state_json: _Optional[str] = ...) -> None: ...

class GetCheckpointRequest(_message.Message):
    __slots__ = ("mission_id",)
    MISSION_ID_FIELD_NUMBER: _ClassVar[int]
    mission_id: str
    def __init__(self, mission_id: _Optional[str] = ...) -> None: ...
