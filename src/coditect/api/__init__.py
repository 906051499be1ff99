"""gRPC API: generated stubs in ``_pb``, servers, clients, conversions, TLS and token auth.

Importing this package turns gRPC's fork support off (``GRPC_ENABLE_FORK_SUPPORT=false``) unless
the environment already says otherwise. CODITECT forks only to ``exec`` sandboxed commands, which
need none of it, while grpcio's ``pthread_atfork`` handlers, enabled in its core by default, can
abort the child when another thread is inside gRPC (``ev_epoll1_linux.cc: Check failed``). The
variable is read when gRPC first initialises, so it must be set before any channel or server exists;
every gRPC import in CODITECT goes through this package.
"""

import os as _os

_os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
