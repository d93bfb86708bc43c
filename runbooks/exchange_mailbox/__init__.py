"""exchange-mailbox: generate the script that clears a user's previous cloud-mailbox info.

:mod:`.identities` validates the identities (arguments and ``--csv``) and :mod:`.script`
writes the PowerShell. Nothing here talks to Exchange: the generated script does, when
an administrator runs it.
"""
