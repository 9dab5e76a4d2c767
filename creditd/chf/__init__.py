"""5G converged charging (3GPP TS 32.291 Nchf_ConvergedCharging v3): an HTTP/2 front end beside api/,
calling the core directly (docs/chf.md)."""
