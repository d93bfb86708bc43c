# Fragments of clear-previous-mailbox.ps1 without the licence fallback (see license-fallback.ps1).

#region LICENSE_HELP

    When Exchange answers that nothing was modified, the user is reported as not cleared;
    generate the script again with --license-reset for the licence-reset fallback.

#endregion LICENSE_HELP

#region LICENSE_PARAM_HELP

#endregion LICENSE_PARAM_HELP

#region EXTRA_PARAMS

#endregion EXTRA_PARAMS

#region CONNECT_GRAPH

#endregion CONNECT_GRAPH

#region LICENSE_FUNCTIONS

#endregion LICENSE_FUNCTIONS

#region LICENSE_SETUP

#endregion LICENSE_SETUP
