#!/usr/bin/env sh
# Installs this Hearth bundle for the current user (no root needed).
# Your chats live in ~/.local/share/Hearth and are never touched by install or uninstall.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
prefix=${HEARTH_PREFIX:-$HOME/.local}
mkdir -p "$prefix/opt" "$prefix/bin" "$prefix/share/applications" \
         "$prefix/share/icons/hicolor/256x256/apps"
rm -rf "$prefix/opt/hearth"
cp -R "$here/hearth" "$prefix/opt/hearth"
ln -sf "$prefix/opt/hearth/hearth" "$prefix/bin/hearth"
sed "s|^Exec=hearth|Exec=$prefix/opt/hearth/hearth|" "$here/hearth.desktop" \
    > "$prefix/share/applications/hearth.desktop"
cp "$here/hearth.png" "$prefix/share/icons/hicolor/256x256/apps/hearth.png"
echo "Hearth installed in $prefix/opt/hearth (start it from your menu or run: hearth)"
