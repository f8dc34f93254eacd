from .audit import AuditEntry, audit_record, audit_record_many

__all__ = ["AuditEntry", "audit_record", "audit_record_many"]
