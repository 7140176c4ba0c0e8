#!/usr/bin/env sh
# Removes the Hearth program. Your chats stay unless you pass --purge-data.
set -eu
prefix=${HEARTH_PREFIX:-$HOME/.local}
rm -rf "$prefix/opt/hearth" "$prefix/bin/hearth" "$prefix/share/applications/hearth.desktop" \
       "$prefix/share/icons/hicolor/256x256/apps/hearth.png"
if [ "${1:-}" = "--purge-data" ]; then
    rm -rf "${HEARTH_DATA_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/Hearth}"
    echo "Hearth and all its chats, settings and downloaded models were removed."
else
    echo "Hearth was removed. Your chats are still in ${XDG_DATA_HOME:-$HOME/.local/share}/Hearth."
fi
