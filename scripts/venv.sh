# The Python environment of scripts/start.sh and scripts/test.sh (sourced by both, from the project root).
#
# use_project_python REQUIREMENTS sets PYTHON to the interpreter to run and installs REQUIREMENTS into it:
# - an active virtual environment ($VIRTUAL_ENV) is used as it is (the packages go into it);
# - else the project's own .venv, made with `python3 -m venv` on the first run and reused after.
# A system Python refuses `pip install` on Debian 12 / Ubuntu 24.04 (PEP 668: "externally managed"), so the
# packages never go there. Debian's python3 lacks `venv`'s pip bootstrap (ensurepip) until python3-venv is
# installed: as root with apt it is installed here, otherwise the message says what to install.
# SCENE2VIDEO_ENV_ONLY=1 stops the calling script once the environment is ready (tests/test_scripts.py).

VENV_DIR=.venv

_has_venv_module() {
  python3 -c "import ensurepip, venv" >/dev/null 2>&1
}

_install_venv_module() {
  if _has_venv_module; then
    return 0
  fi
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "Installing python3-venv with apt (this python3 cannot make a virtual environment without it)" >&2
    if ! log=$(apt-get update -qq 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv 2>&1)
    then
      echo "$log" >&2
    fi
  fi
  if ! _has_venv_module; then
    echo "error: $(command -v python3) cannot make a virtual environment: install python3-venv" \
      "(sudo apt-get install python3-venv), or activate a virtual environment of your own, and run this again" >&2
    return 1
  fi
}

_make_project_venv() {
  # A folder left half made (no pip in it, e.g. by a run before python3-venv was installed) is made again.
  if [ -x "$VENV_DIR/bin/python" ] && "$VENV_DIR/bin/python" -m pip --version >/dev/null 2>&1; then
    echo "Using the virtual environment $VENV_DIR in the project (reused; delete it to start afresh)"
    return 0
  fi
  if ! command -v python3 >/dev/null; then
    echo "error: python3 was not found; install Python 3.10 or newer (sudo apt-get install python3)" >&2
    return 1
  fi
  _install_venv_module || return 1
  echo "Making the virtual environment $VENV_DIR in the project (reused on the next run)"
  python3 -m venv --clear "$VENV_DIR"
}

use_project_python() {
  local requirements=$1
  if [ -n "${VIRTUAL_ENV:-}" ]; then
    if [ ! -x "$VIRTUAL_ENV/bin/python" ]; then
      echo "error: VIRTUAL_ENV is set to $VIRTUAL_ENV, but it has no bin/python; deactivate it or fix it" >&2
      return 1
    fi
    echo "Using the active virtual environment $VIRTUAL_ENV"
    PYTHON=$VIRTUAL_ENV/bin/python
  else
    _make_project_venv || return 1
    PYTHON=$PWD/$VENV_DIR/bin/python
  fi
  "$PYTHON" -m pip install -q -r "$requirements"
}
