# Fragments of clear-previous-mailbox.ps1 for the licence fallback (opsbook exchange
# clear-previous-mailbox --license-reset). Each region fills the marker of the same name
# with the text between '#region NAME' and '#endregion NAME' (without the last line end).

#region LICENSE_HELP

    Licence fallback (enabled): when Exchange answers "The command completed successfully
    but no settings of '...' have been modified", the script uses Microsoft Graph PowerShell
    to turn off only the Exchange Online service plans of the user (EXCHANGE_S_* and the other
    Exchange plans in the user's SKUs, -ExchangePlanPattern) through DisabledPlans, keeping
    every other plan (Teams, OneDrive, voice...) and the seat. A SKU is removed as a whole only
    where its Exchange plan cannot be disabled per user (AppliesTo Company); the plan printed
    for each user says so. It then waits (at most -LicenseWaitSeconds) until Exchange shows the
    user as a MailUser without licence, runs Set-User again and restores exactly the saved
    licences (SkuId and DisabledPlans), verified.

    Before any licence changes, each user's licences are written to a restore file (JSON,
    -RestoreFile, next to the results), flushed to disk; its path is printed. If the run is
    interrupted (Ctrl+C during the wait is caught and the licences restored; a closed window is
    not), run the script again: it finds the users left half-done in the restore file and offers
    to finish them or to restore them (-HalfDone Finish|Restore answers without asking).
    -Restore FILE puts every user of a restore file back exactly and verifies it. Licences
    assigned through a group cannot be changed per user: the script reports them and leaves
    that user unchanged. Needs the Microsoft.Graph.Authentication, Microsoft.Graph.Users
    (Get-MgUser, Get-MgUserLicenseDetail) and Microsoft.Graph.Users.Actions (Set-MgUserLicense)
    modules and the Graph permission User.ReadWrite.All (User.Read.All for a read-only run).

#endregion LICENSE_HELP

#region LICENSE_PARAM_HELP

.PARAMETER LicenseWaitSeconds
    How long to wait for Exchange to see the Exchange plans turned off (default 900 seconds).

.PARAMETER ExchangePlanPattern
    Regular expression for the names of the service plans the fallback turns off
    (default: the Exchange Online plans EXCHANGE_S_*, EXCHANGE_B_*, EXCHANGE_L_*, EXCHANGEDESKLESS).

.PARAMETER RestoreFile
    The restore file (default: clear-previous-mailbox.restore.json next to -ResultCsv). Keep it
    until every user in it shows State Restored.

.PARAMETER Restore
    Restore mode: put every user of this restore file back to the saved licences, verify, and stop.

.PARAMETER HalfDone
    What to do with users an earlier run left half-done: Ask (default), Finish or Restore.

#endregion LICENSE_PARAM_HELP

#region EXTRA_PARAMS
,
    [ValidateRange(60, 7200)]
    [int]$LicenseWaitSeconds = 900,
    [ValidateNotNullOrEmpty()]
    [string]$ExchangePlanPattern = '^(EXCHANGE_[SBL]_|EXCHANGEDESKLESS)',
    [string]$RestoreFile,
    [string]$Restore,
    [ValidateSet('Ask', 'Finish', 'Restore')]
    [string]$HalfDone = 'Ask'
#endregion EXTRA_PARAMS

#region CONNECT_GRAPH
        Connect-Graph
        Open-HalfDone

#endregion CONNECT_GRAPH

#region LICENSE_FUNCTIONS

$RestoreFormat = 'opsbook-exchange-licence-restore/1'

function Connect-Graph {
    foreach ($name in @('Get-MgContext', 'Connect-MgGraph', 'Get-MgUser', 'Get-MgUserLicenseDetail', 'Set-MgUserLicense')) {
        if (-not (Get-Command -Name $name -ErrorAction SilentlyContinue)) {
            throw ('{0} is not available: Install-Module Microsoft.Graph.Authentication, Microsoft.Graph.Users, Microsoft.Graph.Users.Actions -Scope CurrentUser' -f $name)
        }
    }
    if ($SkipConnect) {
        if (-not (Get-MgContext)) { throw 'not connected to Microsoft Graph: run Connect-MgGraph -Scopes User.ReadWrite.All first, or drop -SkipConnect' }
        return
    }
    $connect = @{ ErrorAction = 'Stop' }
    if ($AppId) {
        $connect.ClientId = $AppId
        $connect.CertificateThumbprint = $CertificateThumbprint
        $connect.TenantId = $Organization
    } elseif ($Apply -or $Restore) {
        $connect.Scopes = @('User.ReadWrite.All')
    } else {
        $connect.Scopes = @('User.Read.All')
    }
    if ((Get-Command -Name Connect-MgGraph).Parameters.ContainsKey('NoWelcome')) { $connect.NoWelcome = $true }
    Connect-MgGraph @connect | Out-Null
}

function Get-GraphId {
    # The Entra object id of the user Exchange returned (the key of the restore file).
    param($User)
    $id = Get-Prop $User 'ExternalDirectoryObjectId'
    if (-not $id) { $id = Get-Prop $User 'UserPrincipalName' }
    return $id.ToLowerInvariant()
}

function Get-LicenseState {
    # The user's licences from Graph: SkuId + DisabledPlans, and the group-assigned ones.
    param([string]$GraphId)
    $mg = Get-MgUser -UserId $GraphId -Property 'Id,UserPrincipalName,AssignedLicenses,LicenseAssignmentStates' -ErrorAction Stop
    $saved = @(foreach ($l in @($mg.AssignedLicenses)) {
        [ordered]@{ SkuId = [string]$l.SkuId; DisabledPlans = @(foreach ($p in @($l.DisabledPlans)) { [string]$p }) }
    })
    $byGroup = @(foreach ($s in @($mg.LicenseAssignmentStates)) {
        if ($s.AssignedByGroup) { '{0} (group {1})' -f $s.SkuId, $s.AssignedByGroup }
    })
    return @{ Id = ([string]$mg.Id).ToLowerInvariant(); Upn = [string]$mg.UserPrincipalName; Saved = $saved; ByGroup = $byGroup }
}

function Get-LicensePlan {
    # Which Exchange Online plans to turn off in which SKU (DisabledPlans), keeping every other plan and the
    # seat. A SKU is removed as a whole only when its Exchange plan cannot be disabled per user (AppliesTo Company).
    param([string]$GraphId, $Saved)
    $add = @(); $remove = @(); $lines = @()
    foreach ($sku in @(Get-MgUserLicenseDetail -UserId $GraphId -ErrorAction Stop)) {
        $skuId = [string]$sku.SkuId
        $exchange = @($sku.ServicePlans | Where-Object { $_.ServicePlanName -match $ExchangePlanPattern -and $_.ProvisioningStatus -ne 'Disabled' })
        if ($exchange.Count -eq 0) { continue }
        $names = (@($exchange | ForEach-Object { $_.ServicePlanName }) -join ', ')
        $fixed = @($exchange | Where-Object { $_.AppliesTo -ne 'User' })
        if ($fixed.Count -gt 0) {
            $remove += $skuId
            $lines += ('remove the whole SKU {0} ({1}): {2} applies to {3} and cannot be disabled per user, so every plan of this SKU is off and its seat free until the restore' -f $sku.SkuPartNumber, $skuId, (@($fixed | ForEach-Object { $_.ServicePlanName }) -join ', '), $fixed[0].AppliesTo)
            continue
        }
        $disabled = @()
        foreach ($l in @($Saved)) { if ([string]$l.SkuId -eq $skuId) { $disabled = @($l.DisabledPlans) } }
        $disabled = @(@($disabled) + @($exchange | ForEach-Object { [string]$_.ServicePlanId }) | Select-Object -Unique)
        $add += @{ SkuId = $skuId; DisabledPlans = $disabled }
        $lines += ('in SKU {0} ({1}) turn off {2} through DisabledPlans; every other plan and the seat stay' -f $sku.SkuPartNumber, $skuId, $names)
    }
    return @{ Add = $add; Remove = $remove; Lines = $lines }
}

function Get-PlanText {
    # Read-only run: what the fallback would do for this user, for the report.
    param($User)
    try {
        $state = Get-LicenseState -GraphId (Get-GraphId -User $User)
        if ($state.ByGroup.Count -gt 0) { return ('licence fallback impossible: licence(s) assigned through a group cannot be changed per user: {0}' -f ($state.ByGroup -join ', ')) }
        $plan = Get-LicensePlan -GraphId $state.Id -Saved $state.Saved
        if ($plan.Lines.Count -eq 0) { return 'licence fallback impossible: no Exchange Online plan is on in the user''s licences' }
        return ('if Exchange reports nothing modified, the licence fallback would: ' + ($plan.Lines -join '; '))
    } catch {
        return "cannot read the licences: $_"
    }
}

function Format-Licenses {
    param($Saved)
    return (ConvertTo-Json -InputObject @($Saved) -Compress -Depth 4)
}

function Test-SameLicenses {
    param($Expected, $Actual)
    $e = @(foreach ($l in @($Expected)) { '{0}:{1}' -f $l.SkuId, ((@($l.DisabledPlans) | Sort-Object) -join ',') }) | Sort-Object
    $a = @(foreach ($l in @($Actual)) { '{0}:{1}' -f $l.SkuId, ((@($l.DisabledPlans) | Sort-Object) -join ',') }) | Sort-Object
    return ((@($e) -join ';') -eq (@($a) -join ';'))
}

function Save-RestoreFile {
    # The whole restore file, written to a temporary file, flushed to disk, then swapped in.
    $json = ConvertTo-Json -InputObject ([ordered]@{ Format = $RestoreFormat; GeneratedBy = $GeneratedBy; Users = @($Journal.Values) }) -Depth 8
    $bytes = (New-Object -TypeName System.Text.UTF8Encoding -ArgumentList $false).GetBytes($json)
    $tmp = $RestoreFile + '.tmp'
    $stream = New-Object -TypeName System.IO.FileStream -ArgumentList $tmp, 'Create', 'Write', 'None'
    try {
        $stream.Write($bytes, 0, $bytes.Length)
        $stream.Flush($true)
    } finally {
        $stream.Dispose()
    }
    if ([System.IO.File]::Exists($RestoreFile)) { [System.IO.File]::Replace($tmp, $RestoreFile, $null) } else { [System.IO.File]::Move($tmp, $RestoreFile) }
}

function Read-RestoreFile {
    # The users of a restore file, by Entra object id (an empty list when the file does not exist yet).
    param([string]$Path)
    $journal = [ordered]@{}
    if (-not (Test-Path -LiteralPath $Path)) { return $journal }
    $data = Get-Content -LiteralPath $Path -Raw -Encoding UTF8 | ConvertFrom-Json
    if ((Get-Prop $data 'Format') -ne $RestoreFormat) { throw "$Path is not an opsbook licence restore file" }
    foreach ($u in @($data.Users)) { $journal[[string]$u.GraphId] = $u }
    return $journal
}

function Restore-Licenses {
    # Add back exactly the saved licences (same DisabledPlans); retried, then verified.
    param([string]$GraphId, $Saved)
    $add = @(foreach ($l in @($Saved)) { @{ SkuId = [string]$l.SkuId; DisabledPlans = @($l.DisabledPlans) } })
    $lastError = $null
    for ($attempt = 1; $attempt -le 5; $attempt++) {
        try {
            Set-MgUserLicense -UserId $GraphId -AddLicenses $add -RemoveLicenses @() -ErrorAction Stop | Out-Null
            $now = Get-LicenseState -GraphId $GraphId
            if (Test-SameLicenses $Saved $now.Saved) { return $null }
            $lastError = 'licences after restore differ: ' + (Format-Licenses $now.Saved)
        } catch {
            $lastError = "$_"
        }
        if ($attempt -lt 5) { Start-Sleep -Seconds (10 * $attempt) }
    }
    return $lastError
}

function Restore-Entry {
    # One user of the restore file back to the saved licences; the file records the outcome. Returns the error or $null.
    param($Entry)
    $restoreError = Restore-Licenses -GraphId $Entry.GraphId -Saved @($Entry.Licenses)
    if ($restoreError) { $Entry.State = 'RestoreFailed' } else { $Entry.State = 'Restored' }
    $Entry.Time = (Get-Date).ToUniversalTime().ToString('yyyy-MM-ddTHH:mm:ssZ')
    Save-RestoreFile
    if ($restoreError) {
        Write-Warning ("LICENCES NOT RESTORED for {0}: {1}. Run again with -Restore {2}, or by hand: Set-MgUserLicense -UserId {3} -RemoveLicenses @() -AddLicenses <Licenses in the restore file>" -f $Entry.Identity, $restoreError, (ConvertTo-Literal $RestoreFile), (ConvertTo-Literal $Entry.GraphId))
    } else {
        Write-Host ('  licences of {0} restored exactly as saved (verified)' -f $Entry.Identity)
    }
    return $restoreError
}

function Open-HalfDone {
    # Read the restore file; users an earlier run left half-done are finished or restored (or the run stops).
    $script:Journal = Read-RestoreFile -Path $RestoreFile
    $open = @($Journal.Values | Where-Object { $_.State -ne 'Restored' })
    if ($open.Count -eq 0) { return }
    Write-Warning ('{0} user(s) left half-done by an earlier run (licences not restored), in {1}: {2}' -f $open.Count, $RestoreFile, ((@($open | ForEach-Object { $_.Identity })) -join ', '))
    if (-not $Apply) {
        Write-Host '  read-only run: they are reported as HalfDone; run with -Apply to finish them or restore them (-HalfDone Finish|Restore), or with -Restore to restore them only'
        return
    }
    $choice = $HalfDone
    if ($choice -eq 'Ask') {
        try {
            $answer = Read-Host -Prompt 'Finish them (F: clear, then restore their licences), restore their licences now (R), or stop (anything else)'
        } catch {
            throw 'users left half-done and no answer possible here: run again with -HalfDone Finish or -HalfDone Restore'
        }
        if ($answer -match '^\s*[Ff]') { $choice = 'Finish' } elseif ($answer -match '^\s*[Rr]') { $choice = 'Restore' } else { throw 'stopped: users left half-done; nothing changed' }
    }
    if ($choice -eq 'Restore') {
        foreach ($entry in $open) {
            $restoreError = Restore-Entry -Entry $entry
            $row = New-Result -Identity $entry.Identity
            $row.UserPrincipalName = $entry.UserPrincipalName
            if ($restoreError) { $row.Result = 'LicencesNotRestored'; $row.Message = "restoring the licences saved by an earlier run failed: $restoreError" } else { $row.Result = 'Restored'; $row.Failed = $false; $row.Message = 'licences saved by an earlier run restored (verified)' }
            Add-Result $row
        }
        return
    }
    $script:FinishHalfDone = $true
    $listed = @($Identities | ForEach-Object { $_.ToLowerInvariant() })
    foreach ($entry in $open) {
        if ($listed -notcontains ([string]$entry.Identity).ToLowerInvariant()) {
            Write-Warning ('{0} is not in this script: it stays half-done; run this script with -Restore {1}, or the script that lists it' -f $entry.Identity, (ConvertTo-Literal $RestoreFile))
        }
    }
}

function Enable-CtrlCAsInput {
    # Ctrl+C as a key press while licences are changed, so the script itself restores them (PowerShell#23786).
    try {
        $before = [Console]::TreatControlCAsInput
        [Console]::TreatControlCAsInput = $true
        return $before
    } catch {
        return $null
    }
}

function Disable-CtrlCAsInput {
    param($Before)
    if ($null -ne $Before) { try { [Console]::TreatControlCAsInput = $Before } catch { Write-Verbose 'no console' } }
}

function Wait-Interruptible {
    # Start-Sleep in one-second steps, throwing when Ctrl+C was pressed.
    param([int]$Seconds)
    for ($i = 0; $i -lt $Seconds; $i++) {
        try {
            while ([Console]::KeyAvailable) {
                $key = [Console]::ReadKey($true)
                if ($key.Key -eq 'C' -and ($key.Modifiers -band [ConsoleModifiers]::Control)) { throw 'interrupted with Ctrl+C' }
            }
        } catch [System.InvalidOperationException] {
            Write-Verbose 'no console to read keys from'
        }
        Start-Sleep -Seconds 1
    }
}

function Invoke-LicenseReset {
    # Save the licences in the restore file, turn off the Exchange plans, wait for Exchange, Set-User again,
    # restore exactly (finally). $Entry: a user left half-done by an earlier run, to finish with its saved licences.
    # Returns @{ Changed = <bool>; Failed = <bool>; RestoreFailed = <bool>; Note = <text> }.
    param($User, [string]$Id, [string]$Identity, $Entry)
    $state = Get-LicenseState -GraphId (Get-GraphId -User $User)
    if ($state.ByGroup.Count -gt 0) {
        return @{ Changed = $false; Failed = $true; RestoreFailed = $false; Note = ('licence(s) assigned through a group cannot be changed per user: {0}; exclude the user from the licensing group for the fix (mind the other licences it grants), then run again' -f ($state.ByGroup -join ', ')) }
    }
    if ($null -ne $Entry) { $saved = @($Entry.Licenses) } else { $saved = @($state.Saved) }
    if ($saved.Count -eq 0) {
        return @{ Changed = $false; Failed = $true; RestoreFailed = $false; Note = 'the user has no licence, so the licence fallback cannot help' }
    }
    $plan = Get-LicensePlan -GraphId $state.Id -Saved $saved
    foreach ($line in $plan.Lines) { Write-Host ('  plan for {0}: {1}' -f $Identity, $line) }
    if ($null -eq $Entry) {
        if ($plan.Lines.Count -eq 0) {
            return @{ Changed = $false; Failed = $true; RestoreFailed = $false; Note = 'no Exchange Online plan is on in the user''s licences, so the licence fallback cannot help' }
        }
        $Entry = [ordered]@{
            Identity = $Identity; GraphId = $state.Id; UserPrincipalName = $state.Upn; State = 'Pending'
            Licenses = @($saved); Plan = @($plan.Lines); Time = (Get-Date).ToUniversalTime().ToString('yyyy-MM-ddTHH:mm:ssZ')
        }
        $Journal[$state.Id] = $Entry
        Save-RestoreFile
        Write-Host ('  licences of {0} saved to the restore file {1}: {2}' -f $Identity, $RestoreFile, (Format-Licenses $saved))
    } else {
        Write-Host ('  finishing {0} with the licences saved by the earlier run: {1}' -f $Identity, (Format-Licenses $saved))
    }
    $result = @{ Changed = $false; Failed = $true; RestoreFailed = $false; Note = '' }
    $ctrlC = Enable-CtrlCAsInput
    try {
        if ($plan.Lines.Count -gt 0) {
            Set-MgUserLicense -UserId $state.Id -AddLicenses @($plan.Add) -RemoveLicenses @($plan.Remove) -ErrorAction Stop | Out-Null
        }
        Write-Host ('  Exchange plans off; waiting up to {0} s for Exchange to show the user as MailUser without licence (Ctrl+C restores the licences)' -f $LicenseWaitSeconds)
        $deadline = (Get-Date).AddSeconds($LicenseWaitSeconds)
        while ($true) {
            $u = Get-OneUser -Identity $Id
            $ready = ((Get-Prop $u 'RecipientTypeDetails') -eq 'MailUser') -and ((Get-Prop $u 'SKUAssigned') -ne 'True')
            if ($ready -or (Get-Date) -ge $deadline) { break }
            Wait-Interruptible -Seconds 15
        }
        if (-not $ready) {
            $result.Note = 'Exchange did not show the licence change in time; Set-User not retried'
        } elseif (Invoke-Clear -Id $Id) {
            $result.Changed = $true; $result.Failed = $false; $result.Note = 'cleared after turning off the Exchange plans'
        } else {
            $result.Note = 'Exchange again reported that nothing was modified, even without Exchange licence'
        }
    } catch {
        $result.Note = "licence fallback failed: $_"
    } finally {
        Disable-CtrlCAsInput -Before $ctrlC
        $restoreError = Restore-Entry -Entry $Entry
        if ($restoreError) {
            $result.Failed = $true
            $result.RestoreFailed = $true
            $result.Note = ($result.Note + '; LICENCES NOT RESTORED: ' + $restoreError).TrimStart('; ')
        }
    }
    return $result
}

#endregion LICENSE_FUNCTIONS

#region LICENSE_SETUP
    if ($Restore) { $RestoreFile = $Restore }
    if (-not $RestoreFile) { $RestoreFile = [System.IO.Path]::Combine([System.IO.Path]::GetDirectoryName($ResultCsv), 'clear-previous-mailbox.restore.json') }
    $RestoreFile = $ExecutionContext.SessionState.Path.GetUnresolvedProviderPathFromPSPath($RestoreFile)
    Write-Host ('restore file (licences saved before any change; keep it): {0}' -f $RestoreFile)
    if ($Restore) {
        # Restore mode: every user of the restore file back to the saved licences, verified; no Exchange session needed.
        $restoreOnly = $true
        if (-not (Test-Path -LiteralPath $RestoreFile)) { throw "-Restore: no such file: $RestoreFile" }
        Connect-Graph
        $Journal = Read-RestoreFile -Path $RestoreFile
        if ($Journal.Count -eq 0) { throw "-Restore: no users in $RestoreFile" }
        foreach ($entry in @($Journal.Values)) {
            $current = $entry.Identity
            $row = New-Result -Identity $entry.Identity
            $row.UserPrincipalName = $entry.UserPrincipalName
            $restoreError = Restore-Entry -Entry $entry
            if ($restoreError) {
                $row.Result = 'LicencesNotRestored'; $row.Message = "restore failed: $restoreError"
            } else {
                $row.Result = 'Restored'; $row.Failed = $false; $row.Message = 'licences as in the restore file (SKUs and DisabledPlans), verified'
            }
            Add-Result $row
            $current = $null
        }
    }

#endregion LICENSE_SETUP
