# ruff: noqa
from coditect.api._pb import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SubmitMissionRequest(_message.Message):
    __slots__ = ("request", "repo", "base_ref", "plan_only")
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    REPO_FIELD_NUMBER: _ClassVar[int]
    BASE_REF_FIELD_NUMBER: _ClassVar[int]
    PLAN_ONLY_FIELD_NUMBER: _ClassVar[int]
    request: str
    repo: str
    base_ref: str
    plan_only: bool
    def __init__(self, request: _Optional[str] = ..., repo: _Optional[str] = ..., base_ref: _Optional[str] = ..., plan_only: _Optional[bool] = ...) -> None: ...

class Plan(_message.Message):
    __slots__ = ("tasks", "source")
    TASKS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[_common_pb2.Task]
    source: str
    def __init__(self, tasks: _Optional[_Iterable[_Union[_common_pb2.Task, _Mapping]]] = ..., source: _Optional[str] = ...) -> None: ...

class SubmitMissionResponse(_message.Message):
    __slots__ = ("mission_id", "plan", "branch", "base_commit")
    MISSION_ID_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    BRANCH_FIELD_NUMBER: _ClassVar[int]
    BASE_COMMIT_FIELD_NUMBER: _ClassVar[int]
    mission_id: str
    plan: Plan
    branch: str
    base_commit: str
    def __init__(self, mission_id: _Optional[str] = ..., plan: _Optional[_Union[Plan, _Mapping]] = ..., branch: _Optional[str] = ..., base_commit: _Optional[str] = ...) -> None: ...

class GetMissionRequest(_message.Message):
    __slots__ = ("mission_id",)
    MISSION_ID_FIELD_NUMBER: _ClassVar[int]
    mission_id: str
    def __init__(self, mission_id: _Optional[str] = ...) -> None: ...

class Mission(_message.Message):
    __slots__ = ("mission_id", "status", "reason", "request", "repo", "branch", "commit", "tasks", "report_json")
    MISSION_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    REPO_FIELD_NUMBER: _ClassVar[int]
    BRANCH_FIELD_NUMBER: _ClassVar[int]
    COMMIT_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    REPORT_JSON_FIELD_NUMBER: _ClassVar[int]
    mission_id: str
    status: str
    reason: str
    request: str
    repo: str
    branch: str
    commit: str
    tasks: _containers.RepeatedCompositeFieldContainer[_common_pb2.Task]
    report_json: str
    def __init__(self, mission_id: _Optional[str] = ..., status: _Optional[str] = ..., reason: _Optional[str] = ..., request: _Optional[str] = ..., repo: _Optional[str] = ..., branch: _Optional[str] = ..., commit: _Optional[str] = ..., tasks: _Optional[_Iterable[_Union[_common_pb2.Task, _Mapping]]] = ..., report_json: _Optional[str] = ...) -> None: ...

class WatchMissionRequest(_message.Message):
    __slots__ = ("mission_id", "after_seq")
    MISSION_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    mission_id: str
    after_seq: int
    def __init__(self, mission_id: _Optional[str] = ..., after_seq: _Optional[int] = ...) -> None: ...

class MissionEvent(_message.Message):
    __slots__ = ("mission_id", "type", "task_id", "event_json", "seq")
    MISSION_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_JSON_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    mission_id: str
    type: str
    task_id: str
    event_json: str
    seq: int
    def __init__(self, mission_id: _Optional[str] = ..., type: _Optional[str] = ..., task_id: _Optional[str] = ..., event_json: _Optional[str] = ..., seq: _Optional[int] = ...) -> None: ...

class CancelMissionRequest(_message.Message):
    __slots__ = ("mission_id", "reason")
    MISSION_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    mission_id: str
    reason: str
    def __init__(self, mission_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class CancelMissionResponse(_message.Message):
    __slots__ = ("cancelled",)
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    cancelled: bool
    def __init__(self, cancelled: _Optional[bool] = ...) -> None: ...
