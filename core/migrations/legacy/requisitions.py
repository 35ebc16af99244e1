"""Schema of purchase requisitions, their approvals and the ERP push queue (component
``requisitions``).

Kept to bring pre-Alembic databases up to the baseline; never edit. Same SQL subset as the inventory
schema; times are epoch milliseconds in ``INTEGER`` columns. A requisition names its SKU and
suggestion by value, not by foreign key: the inventory component owns those tables and may
migrate on its own.
"""

MIGRATIONS: list[str] = [
    # 1: requisitions, approvals, ERP push queue
    """
    CREATE TABLE req_requisitions (
        id INTEGER PRIMARY KEY,
        site TEXT NOT NULL,
        sku TEXT NOT NULL,
        qty REAL NOT NULL CHECK (qty > 0),
        supplier TEXT,
        unit_cost REAL NOT NULL CHECK (unit_cost >= 0),
        currency TEXT NOT NULL,
        amount REAL NOT NULL CHECK (amount >= 0),
        category TEXT,
        suggestion_id INTEGER,
        state TEXT NOT NULL DEFAULT 'draft'
            CHECK (state IN ('draft', 'submitted', 'approved', 'rejected', 'ordered',
                             'received', 'cancelled')),
        approvals_required INTEGER NOT NULL DEFAULT 0 CHECK (approvals_required >= 0),
        requested_by TEXT NOT NULL,
        required_by INTEGER,
        note TEXT NOT NULL DEFAULT '',
        received_qty REAL NOT NULL DEFAULT 0 CHECK (received_qty >= 0),
        erp_target TEXT,
        erp_document TEXT,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE INDEX req_requisitions_by_site ON req_requisitions (site, state);
    CREATE INDEX req_requisitions_by_suggestion ON req_requisitions (suggestion_id);
    CREATE TABLE req_approvals (
        id INTEGER PRIMARY KEY,
        requisition_id INTEGER NOT NULL REFERENCES req_requisitions (id),
        approver TEXT NOT NULL,
        decision TEXT NOT NULL CHECK (decision IN ('approved', 'rejected')),
        comment TEXT NOT NULL DEFAULT '',
        at INTEGER NOT NULL,
        UNIQUE (requisition_id, approver)
    );
    CREATE TABLE req_erp_queue (
        id INTEGER PRIMARY KEY,
        requisition_id INTEGER NOT NULL UNIQUE REFERENCES req_requisitions (id),
        target TEXT NOT NULL,
        idempotency_key TEXT NOT NULL UNIQUE,
        status TEXT NOT NULL DEFAULT 'pending'
            CHECK (status IN ('pending', 'sending', 'done', 'dead', 'cancelled')),
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL,
        last_error TEXT,
        document TEXT,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE INDEX req_erp_queue_due ON req_erp_queue (status, next_attempt_at);
    """,
    # 2: a row being sent names the pusher process sending it, so that several pushers can share
    # the database and a restarted one takes back only its own
    """
    ALTER TABLE req_erp_queue ADD COLUMN claimed_by TEXT;
    """,
]
