from .audit import AuditEntry, audit_changes_save, audit_record, audit_record_many

__all__ = ["AuditEntry", "audit_changes_save", "audit_record", "audit_record_many"]
