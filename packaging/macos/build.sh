#!/usr/bin/env bash
# Builds Hearth.app (PyInstaller BUNDLE, Info.plist and .icns come from the spec) and a .dmg.
# Run on macOS from anywhere: packaging/macos/build.sh
# Not built on the development machine (Linux); built by .github/workflows/build.yml.
#
# Signing and notarization (needs an Apple Developer ID; set these and run again):
#   export HEARTH_SIGN_ID="Developer ID Application: Your Name (TEAMID)"
#   export HEARTH_NOTARY_PROFILE=hearth   # from: xcrun notarytool store-credentials hearth ...
# The script then signs every binary with the hardened runtime, notarizes the .dmg and
# staples the ticket, so Gatekeeper opens it without warnings.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
python3 -m pip install -q "pyinstaller>=6.10"
version=$(python3 -c "import desktop; print(desktop.__version__)")
pyinstaller packaging/hearth.spec --noconfirm --distpath build/dist --workpath build/work
app="build/dist/Hearth.app"
dmg="build/dist/hearth-$version-macos-$(uname -m).dmg"

if [ -n "${HEARTH_SIGN_ID:-}" ]; then
    codesign --force --deep --options runtime --timestamp \
        --entitlements packaging/macos/entitlements.plist --sign "$HEARTH_SIGN_ID" "$app"
    codesign --verify --deep --strict "$app"
fi

staging=$(mktemp -d)
cp -R "$app" "$staging/"
ln -s /Applications "$staging/Applications"
rm -f "$dmg"
hdiutil create -volname "Hearth" -srcfolder "$staging" -ov -format UDZO "$dmg"
rm -rf "$staging"

if [ -n "${HEARTH_SIGN_ID:-}" ] && [ -n "${HEARTH_NOTARY_PROFILE:-}" ]; then
    codesign --sign "$HEARTH_SIGN_ID" --timestamp "$dmg"
    xcrun notarytool submit "$dmg" --keychain-profile "$HEARTH_NOTARY_PROFILE" --wait
    xcrun stapler staple "$dmg"
fi
echo "app: $app"
echo "dmg: $dmg"
