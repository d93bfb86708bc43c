"""What the host shows about Docker without asking the engine, one module per resource.

daemon.json (:mod:`.daemon_json`), the running dockerd's flags (:mod:`.dockerd`), the systemd
unit (:mod:`.systemd`), mounts, filesystem types and d_type (:mod:`.filesystems`), free space
and tree usage (:mod:`.usage`). Everything is importable from here.
"""

from .daemon_json import (
    DEFAULT_DAEMON_JSON,
    DaemonConfig,
    DuplicateKeyError,
    default_daemon_json,
    parse_daemon_json,
    read_daemon_json,
)
from .dockerd import (
    DATA_ROOT_FLAGS,
    DEFAULT_SOCKET,
    DockerdProcess,
    config_file_arg,
    data_root_flags,
    dockerd_processes,
    flag_value,
)
from .filesystems import (
    UNSUPPORTED_FS,
    Mount,
    d_types,
    is_under,
    mount_of,
    mounts,
    mounts_below,
    nearest_existing,
    selinux_enforcing,
    supports_d_type,
    unsupported_fs,
)
from .systemd import SYSTEMD_UNIT_DIRS, is_systemd_host, systemd_unit_flags, unit_exists, unit_files
from .usage import Space, Usage, space, usage

__all__ = [
    "DATA_ROOT_FLAGS",
    "DEFAULT_DAEMON_JSON",
    "DEFAULT_SOCKET",
    "SYSTEMD_UNIT_DIRS",
    "UNSUPPORTED_FS",
    "DaemonConfig",
    "DockerdProcess",
    "DuplicateKeyError",
    "Mount",
    "Space",
    "Usage",
    "config_file_arg",
    "d_types",
    "data_root_flags",
    "default_daemon_json",
    "dockerd_processes",
    "flag_value",
    "is_systemd_host",
    "is_under",
    "mount_of",
    "mounts",
    "mounts_below",
    "nearest_existing",
    "parse_daemon_json",
    "read_daemon_json",
    "selinux_enforcing",
    "space",
    "supports_d_type",
    "systemd_unit_flags",
    "unit_exists",
    "unit_files",
    "unsupported_fs",
    "usage",
]
