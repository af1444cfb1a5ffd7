"""The audit log: who did what to the gateway, in a hash chain that shows any edit or deletion."""

from gateway.audit.chain import AuditEntry, AuditLog, AuditProblem, VerifyResult

__all__ = ["AuditEntry", "AuditLog", "AuditProblem", "VerifyResult"]
