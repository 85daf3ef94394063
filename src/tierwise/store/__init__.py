"""The operational store (SQLAlchemy 2 + Alembic; SQLite file or PostgreSQL): users and
credentials, published runs and profiles, follow-up tasks, complaints, membership levels,
campaigns, the audit chain, suppression and consent.

Modules: `db` (engines, sessions, migrations), `models`, `users`, `tokens`, `web_sessions`,
`audit`, `suppression`, `publish`, `tasks`, `complaints`, `membership`, `campaigns`. Repository
functions take a Session and flush; the caller commits, except where a function documents
otherwise.
"""
