"""WinRM over HTTPS: the outside check (``check``), the audit and the binding script."""
