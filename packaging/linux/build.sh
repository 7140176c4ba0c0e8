#!/usr/bin/env bash
# Builds the Linux one-folder bundle and a tarball with a .desktop file, icon and installer.
# Usage: packaging/linux/build.sh  (from anywhere; writes build/dist/)
# AppImage: not produced. appimagetool is not in Debian's or PyPI's registries reachable here
# (python-appimage downloads it from GitHub at run time), so the tarball is the Linux artifact.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
python -m pip install -q "pyinstaller>=6.10"
version=$(python -c "import desktop; print(desktop.__version__)")
started=$(date +%s)
pyinstaller packaging/hearth.spec --noconfirm --log-level WARN \
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
