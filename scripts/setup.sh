#!/usr/bin/env bash
# One-command setup of wm_agent on a fresh machine without a ROS install (see README).
#
#   bash scripts/setup.sh            (or: make setup)
#
# Creates .venv with Python 3.11 (the ROS 2 Kilted wheels on PyPI are cp311), installs the pinned
# dependencies (requirements.txt + constraints.txt), builds the interface package msg/
# (wm_agent_msgs) with cmake into the venv, builds the vendored tf2_msgs (TFMessage; no wheel on
# PyPI) where no tf2_msgs imports, and installs wm_agent in editable mode.
# Idempotent: each step runs only when its inputs changed (hash stamps in .venv/), so a second
# run takes seconds and changes nothing.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
venv="${WM_AGENT_VENV:-$root/.venv}"
python_bin="${WM_AGENT_PYTHON:-python3.11}"

say() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

# --- 1. what the machine must have --------------------------------------------------------------
missing=()
command -v "$python_bin" >/dev/null 2>&1 || {
    if command -v python3 >/dev/null 2>&1 && [ "$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')" = "3.11" ]; then
        python_bin=python3
    else
        missing+=("Python 3.11 (the ROS 2 Kilted wheels are built for CPython 3.11): apt-get install python3.11 python3.11-venv python3.11-dev")
    fi
}
command -v cmake >/dev/null 2>&1 || missing+=("cmake >= 3.21: apt-get install cmake")
command -v cc >/dev/null 2>&1 || command -v gcc >/dev/null 2>&1 || missing+=("a C compiler: apt-get install build-essential")
command -v c++ >/dev/null 2>&1 || command -v g++ >/dev/null 2>&1 || missing+=("a C++ compiler: apt-get install build-essential")
command -v make >/dev/null 2>&1 || missing+=("make: apt-get install make")
if [ ${#missing[@]} -eq 0 ]; then
    inc="$("$python_bin" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
    [ -f "$inc/Python.h" ] || missing+=("Python 3.11 headers ($inc/Python.h): apt-get install python3.11-dev")
    "$python_bin" -c 'import venv, ensurepip' 2>/dev/null || missing+=("Python venv support: apt-get install python3.11-venv")
    cmake_version="$(cmake --version | head -n1 | awk '{print $3}')"
    printf '%s\n3.21\n' "$cmake_version" | sort -V -C 2>/dev/null && [ "$cmake_version" != "3.21" ] \
        && missing+=("cmake >= 3.21 (found $cmake_version): install a newer cmake (pip install cmake)")
fi
if [ ${#missing[@]} -gt 0 ]; then
    printf '[setup] ERROR: this machine lacks what the setup needs:\n' >&2
    printf '  - %s\n' "${missing[@]}" >&2
    exit 1
fi

hash_of() { cat "$@" | sha256sum | cut -c1-64; }

# --- 2. the venv ------------------------------------------------------------------------------------
if [ ! -x "$venv/bin/python" ]; then
    say "creating $venv"
    "$python_bin" -m venv "$venv"
fi
touch "$venv/COLCON_IGNORE"   # the venv holds share/*/package.xml: keep colcon from crawling it
py="$venv/bin/python"

# --- 3. pinned dependencies -------------------------------------------------------------------------
deps_hash="$(hash_of requirements.txt constraints.txt)"
if [ "$(cat "$venv/.wm_deps.sha256" 2>/dev/null)" != "$deps_hash" ]; then
    say "installing pinned dependencies (first run: about a minute)"
    mkdir -p "$root/build"
    pip_log="$root/build/pip-install.log"
    "$py" -m pip install --disable-pip-version-check -r requirements.txt -c constraints.txt \
        > "$pip_log" 2>&1 \
        || { grep -v 'WARNING: Location' "$pip_log" | tail -n 30 >&2
             die "pip install failed; full log: $pip_log. Check access to the package index."; }
    echo "$deps_hash" > "$venv/.wm_deps.sha256"
else
    say "dependencies up to date"
fi

# --- 4. interface packages, built with cmake into the venv prefix ----------------------------------
# build_interfaces NAME SOURCE_DIR IMPORT: configure, build and install one rosidl package.
build_interfaces() {
    local name="$1" src="$2" import="$3" build="$root/build/$1" log="$root/build/$1.log"
    mkdir -p "$root/build"
    touch "$root/build/COLCON_IGNORE"
    {
        AMENT_PREFIX_PATH="$venv" CMAKE_PREFIX_PATH="$venv" cmake -S "$src" -B "$build" \
            -DCMAKE_INSTALL_PREFIX="$venv" -DPython3_EXECUTABLE="$py" -DBUILD_TESTING=OFF \
            -DCMAKE_BUILD_TYPE=Release \
        && AMENT_PREFIX_PATH="$venv" cmake --build "$build" -j "$(nproc)" \
        && cmake --install "$build"
    } > "$log" 2>&1 || { tail -n 40 "$log" >&2; die "building $src ($name) failed; full log: $log"; }
    "$py" -c "import $import" || die "$name was built but does not import; full log: $log"
}

# 4a. msg/ -> wm_agent_msgs
msgs_hash="$(hash_of "$venv/.wm_deps.sha256" msg/CMakeLists.txt msg/cmake/* msg/package.xml msg/msg/* msg/srv/*)"
if [ "$(cat "$venv/.wm_msgs.sha256" 2>/dev/null)" != "$msgs_hash" ] \
    || ! "$py" -c 'import wm_agent_msgs.msg' >/dev/null 2>&1; then
    say "building the interface package wm_agent_msgs with cmake (about a minute)"
    build_interfaces wm_agent_msgs msg "wm_agent_msgs.msg, wm_agent_msgs.srv"
    echo "$msgs_hash" > "$venv/.wm_msgs.sha256"
else
    say "interface package up to date"
fi

# 4b. vendor/tf2_msgs -> tf2_msgs (TFMessage only): PyPI has no ros-tf2-msgs wheel. Built only
# where tf2_msgs does not import, or where it is ours (stamp) and its sources changed.
tf2_hash="$(hash_of "$venv/.wm_deps.sha256" vendor/tf2_msgs/CMakeLists.txt vendor/tf2_msgs/package.xml \
    vendor/tf2_msgs/msg/* msg/cmake/*)"
if ! "$py" -c 'import tf2_msgs.msg' >/dev/null 2>&1 \
    || { [ -f "$venv/.wm_tf2.sha256" ] && [ "$(cat "$venv/.wm_tf2.sha256")" != "$tf2_hash" ]; }; then
    say "building tf2_msgs (TFMessage, vendored) with cmake"
    build_interfaces tf2_msgs vendor/tf2_msgs tf2_msgs.msg
    echo "$tf2_hash" > "$venv/.wm_tf2.sha256"
else
    say "tf2_msgs present"
fi

# --- 5. wm_agent itself (editable) -------------------------------------------------------------
pkg_hash="$(hash_of "$venv/.wm_deps.sha256" setup.py setup.cfg package.xml)"
if [ "$(cat "$venv/.wm_pkg.sha256" 2>/dev/null)" != "$pkg_hash" ] || [ ! -x "$venv/bin/wm-agent" ]; then
    say "installing wm_agent (editable)"
    mkdir -p "$root/build"
    "$py" -m pip install --disable-pip-version-check --no-deps --no-build-isolation -e . \
        > "$root/build/pip-install-wm_agent.log" 2>&1 \
        || { grep -v 'WARNING: Location' "$root/build/pip-install-wm_agent.log" | tail -n 30 >&2
             die "pip install -e . failed; full log: $root/build/pip-install-wm_agent.log"; }
    echo "$pkg_hash" > "$venv/.wm_pkg.sha256"
else
    say "wm_agent up to date"
fi
# --- 6. the fleet assignment's numba kernels: compiled into their cache now (~20 s the first
# time), not by the first run's coordinator; loading them takes ~1 s
"$py" -c 'from wm_agent.fleet.assignment import warm_up; warm_up()' \
    || die "compiling the fleet assignment kernels (numba) failed"
say "ready: $venv  (activate with: source .venv/bin/activate)"
