# Builds the Windows bundle with PyInstaller and the installer with Inno Setup.
# Run from the repository root in PowerShell: .\packaging\windows\build.ps1
# Needs: Python 3.11+, the project installed (py -m pip install -e .[packaging]), and
# Inno Setup 6 (iscc on PATH; `choco install innosetup` on GitHub's windows runners).
$ErrorActionPreference = "Stop"
$version = (py -c "import desktop; print(desktop.__version__)").Trim()
$started = Get-Date
py -m PyInstaller packaging\hearth.spec --noconfirm --distpath build\dist --workpath build\work
iscc /DAppVersion=$version packaging\windows\hearth.iss
$elapsed = [int]((Get-Date) - $started).TotalSeconds
Write-Output "installer: build\dist\hearth-$version-windows-x64-setup.exe (build time $elapsed s)"
