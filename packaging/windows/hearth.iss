; Inno Setup script for Hearth (Windows installer with Start-menu entry and uninstaller).
; Build the bundle first (packaging\windows\build.ps1 does both), then:
;   iscc packaging\windows\hearth.iss
; Not built on the development machine (Linux); built by .github/workflows/build.yml.

#define AppName "Hearth"
#ifndef AppVersion
  #define AppVersion "0.1.0"
#endif

[Setup]
AppId={{6E4C2D0A-4C5B-4B1E-9C7E-2F0A8D1B3E55}
AppName={#AppName}
AppVersion={#AppVersion}
AppPublisher=Hearth
DefaultDirName={autopf}\{#AppName}
DefaultGroupName={#AppName}
; Per-user install by default, so no admin rights are needed; the dialog offers all users.
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog
OutputDir=..\..\build\dist
OutputBaseFilename=hearth-{#AppVersion}-windows-x64-setup
SetupIconFile=..\..\resources\icons\hearth.ico
UninstallDisplayIcon={app}\hearth.exe
Compression=lzma2
SolidCompression=yes
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
WizardStyle=modern

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked

[Files]
Source: "..\..\build\dist\hearth\*"; DestDir: "{app}"; Flags: recursesubdirs createallsubdirs ignoreversion

[Icons]
Name: "{group}\{#AppName}"; Filename: "{app}\hearth.exe"
Name: "{group}\Uninstall {#AppName}"; Filename: "{uninstallexe}"
Name: "{autodesktop}\{#AppName}"; Filename: "{app}\hearth.exe"; Tasks: desktopicon

[Run]
Filename: "{app}\hearth.exe"; Description: "{cm:LaunchProgram,{#AppName}}"; Flags: nowait postinstall skipifsilent

[Code]
// Chats live in %LOCALAPPDATA%\Hearth, outside {app}: uninstalling keeps them unless the
// user explicitly asks to remove them (default: keep).
procedure CurUninstallStepChanged(CurUninstallStep: TUninstallStep);
var
  DataDir: String;
begin
  if CurUninstallStep = usPostUninstall then
  begin
    DataDir := ExpandConstant('{localappdata}\Hearth');
    if DirExists(DataDir) and not UninstallSilent() then
      if MsgBox('Also delete your Hearth chats, settings and downloaded models in ' + DataDir + '?',
                mbConfirmation, MB_YESNO or MB_DEFBUTTON2) = IDYES then
        DelTree(DataDir, True, True, True);
  end;
end;
