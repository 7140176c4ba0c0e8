#!/usr/bin/env bash
# Builds the Linux one-folder bundle and a tarball with a .desktop file, icon and installer.
# Usage: packaging/linux/build.sh  (from anywhere; writes build/dist/)
# AppImage: not produced. appimagetool is not in Debian's or PyPI's registries reachable here
# (python-appimage downloads it from GitHub at run time), so the tarball is the Linux artifact.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
# One interpreter for everything below, the one Hearth is installed in: $PYTHON if set, else
# the active virtual environment, else the README's .venv, else python3 on PATH. PyInstaller
# runs as a module of that same interpreter, so it bundles exactly what the tests ran with
# (a `pyinstaller` found on PATH could belong to another Python).
if [ -n "${PYTHON:-}" ]; then
    py=$PYTHON
elif [ -n "${VIRTUAL_ENV:-}" ] && [ -x "$VIRTUAL_ENV/bin/python" ]; then
    py=$VIRTUAL_ENV/bin/python
elif [ -x .venv/bin/python ]; then
    py=.venv/bin/python
else
    py=python3
fi
echo "python: $("$py" -c 'import sys; print(sys.executable, sys.version.split()[0])')"
"$py" -m pip install -q "pyinstaller>=6.10"
version=$("$py" -c "import desktop; print(desktop.__version__)")
started=$(date +%s)
"$py" -m PyInstaller packaging/hearth.spec --noconfirm --log-level WARN \
    --distpath build/dist --workpath build/work
built=$(date +%s)
name="hearth-$version-linux-$(uname -m)"
stage="build/dist/$name"
rm -rf "$stage"
mkdir -p "$stage"
cp -R build/dist/hearth "$stage/hearth"
cp packaging/linux/hearth.desktop packaging/linux/install.sh packaging/linux/uninstall.sh "$stage/"
cp resources/icons/hearth-256.png "$stage/hearth.png"
tar -C build/dist -czf "build/dist/$name.tar.gz" "$name"
echo "bundle: build/dist/hearth ($(du -sm build/dist/hearth | cut -f1) MB unpacked, without models)"
echo "tarball: build/dist/$name.tar.gz ($(du -sm "build/dist/$name.tar.gz" | cut -f1) MB)"
echo "build time: $((built - started)) s"
