// The schema's history: an append-only list of migrations, applied in order at start. A released
// migration is never edited; a change to the schema is a new entry with the next version.

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const migrations: readonly Migration[] = [
  {
    version: 1,
    name: 'principals and tokens',
    sql: `
      CREATE TABLE principals (
        id          TEXT PRIMARY KEY,            -- UUID v7
        name        TEXT NOT NULL,
        role        TEXT NOT NULL CHECK (role IN ('admin', 'member')),
        created_at  TEXT NOT NULL,               -- RFC 3339
        revoked_at  TEXT                          -- set when deleted; the row stays for ownership and audit
      ) STRICT;

      CREATE TABLE tokens (
        id            TEXT PRIMARY KEY,          -- UUID v7, the public half of a token
        principal_id  TEXT NOT NULL REFERENCES principals (id),
        secret_hash   BLOB NOT NULL,             -- SHA-256 of the 32 secret bytes
        created_at    TEXT NOT NULL,
        revoked_at    TEXT
      ) STRICT;
      CREATE INDEX tokens_principal ON tokens (principal_id);
    `,
  },
  {
    version: 2,
    name: 'models and datasets',
    sql: `
      CREATE TABLE models (
        id           TEXT PRIMARY KEY,           -- UUID v7
        owner_id     TEXT NOT NULL REFERENCES principals (id),
        name         TEXT NOT NULL,
        description  TEXT NOT NULL,
        sha256       TEXT NOT NULL,              -- of the uploaded file, hex
        size_bytes   INTEGER NOT NULL,
        details      TEXT NOT NULL,              -- JSON: what the model check found
        created_at   TEXT NOT NULL
      ) STRICT;
      CREATE INDEX models_owner ON models (owner_id, id);

      CREATE TABLE datasets (
        id                 TEXT PRIMARY KEY,     -- UUID v7
        owner_id           TEXT NOT NULL REFERENCES principals (id),
        name               TEXT NOT NULL,
        description        TEXT NOT NULL,
        format             TEXT NOT NULL CHECK (format IN ('torchscript', 'safetensors', 'csv')),
        sha256             TEXT NOT NULL,        -- of the uploaded file, hex
        size_bytes         INTEGER NOT NULL,
        privacy_limit      REAL NOT NULL CHECK (privacy_limit > 0),   -- epsilon the owner allows in all
        delta              REAL NOT NULL CHECK (delta > 0 AND delta < 1),
        allow_non_private  INTEGER NOT NULL CHECK (allow_non_private IN (0, 1)),
        sample_count       INTEGER NOT NULL CHECK (sample_count > 0),
        details            TEXT NOT NULL,        -- JSON: the canonical tensors' summary
        created_at         TEXT NOT NULL
      ) STRICT;
      CREATE INDEX datasets_owner ON datasets (owner_id, id);
    `,
  },
  {
    version: 3,
    name: 'privacy ledger',
    sql: `
      -- Every DP release charged to a dataset: the mechanism (a privacy event, JSON) and what caused it.
      -- A dataset's spent ε is the composition of all its rows under the ledger's accountant, never a sum
      -- of per-row ε. Rows are only ever added; deleting a dataset deletes its ledger with it.
      CREATE TABLE privacy_charges (
        id           TEXT PRIMARY KEY,                 -- UUID v7: rows sort by charge time
        dataset_id   TEXT NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
        source_kind  TEXT NOT NULL CHECK (source_kind IN ('training', 'evaluation', 'metric')),
        source_id    TEXT NOT NULL,                    -- the job or request that caused the release
        event        TEXT NOT NULL,                    -- JSON PrivacyEvent
        created_at   TEXT NOT NULL
      ) STRICT;
      CREATE INDEX privacy_charges_dataset ON privacy_charges (dataset_id, id);
    `,
  },
  {
    version: 4,
    name: 'training jobs',
    sql: `
      -- One row per training job. The plan (σ, q, steps, the events charged) is fixed when the job is
      -- accepted and its ledger charge written; the rest records the job's life. Rows are kept after
      -- the job ends: they are the history the lineage of a trained model points to.
      CREATE TABLE trainings (
        id               TEXT PRIMARY KEY,             -- UUID v7: FIFO order of the queue
        owner_id         TEXT NOT NULL REFERENCES principals (id),
        model_id         TEXT NOT NULL,                -- the source model (no FK: the row outlives it)
        dataset_ids      TEXT NOT NULL,                -- JSON array of dataset ids
        status           TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
        request          TEXT NOT NULL,                -- JSON: the request as accepted
        plan             TEXT NOT NULL,                -- JSON: the TrainingPlan, events and clip groups included
        step             INTEGER NOT NULL DEFAULT 0,   -- steps run, as of the last checkpoint or the end
        checkpoint_step  INTEGER,                      -- step of the latest sealed checkpoint, null if none
        samples_per_sec  REAL,
        error            TEXT,
        result_model_id  TEXT,
        created_at       TEXT NOT NULL,
        started_at       TEXT,
        finished_at      TEXT
      ) STRICT;
      CREATE INDEX trainings_owner ON trainings (owner_id, id);
      CREATE INDEX trainings_status ON trainings (status, id);
    `,
  },
  {
    version: 5,
    name: 'training metrics',
    sql: `
      -- JSON array of the released per-epoch training metrics (noisy unless the training was non-private).
      ALTER TABLE trainings ADD COLUMN metrics TEXT NOT NULL DEFAULT '[]';
    `,
  },
  {
    version: 6,
    name: 'training dropped samples',
    sql: `
      -- JSON {datasetId: {exception, nonFiniteLoss, nonFiniteGradient}}: the samples a private training
      -- dropped, per dataset and reason (counts only; each dataset's owner sees its own); null until known.
      ALTER TABLE trainings ADD COLUMN dropped TEXT;
    `,
  },
  {
    version: 7,
    name: 'flow governance',
    sql: `
      -- A dataset's policy (JSON DatasetPolicy, src/governance/policy.ts): who may train and evaluate on it,
      -- the ε a single training may ask for, non-private use, and how trained models are released. It
      -- replaces allow_non_private. Datasets uploaded before policies existed become private to their
      -- owner (the safe reading of "nobody named").
      ALTER TABLE datasets ADD COLUMN policy TEXT NOT NULL DEFAULT '{}';
      UPDATE datasets SET policy = json_object(
        'trainers', json('[]'), 'allowEvaluation', json('true'),
        'allowNonPrivate', json(CASE allow_non_private WHEN 1 THEN 'true' ELSE 'false' END), 'release', 'trainer');
      ALTER TABLE datasets DROP COLUMN allow_non_private;

      -- A model's policy (JSON ModelPolicy): who besides its owner may see it and train or evaluate with it.
      ALTER TABLE models ADD COLUMN policy TEXT NOT NULL DEFAULT '{"readers":[]}';

      -- The principal whose request caused a charge (null for charges written before this version).
      ALTER TABLE privacy_charges ADD COLUMN principal_id TEXT;

      -- Release approvals of a trained model: one row per dataset owner whose policy asked for approval
      -- when the model was created. decision is null while pending; a decision is final.
      CREATE TABLE approvals (
        model_id     TEXT NOT NULL REFERENCES models (id) ON DELETE CASCADE,
        approver_id  TEXT NOT NULL REFERENCES principals (id),
        dataset_ids  TEXT NOT NULL,                 -- JSON array: the approver's datasets the model was trained on
        decision     TEXT CHECK (decision IN ('approve', 'reject')),
        reason       TEXT,
        decided_at   TEXT,
        PRIMARY KEY (model_id, approver_id)
      ) STRICT;

      -- The audit log: one row per state change or refused access, chained by HMAC-SHA256 (each mac covers
      -- the previous one); src/governance/audit.ts writes it in the transaction of the change it records.
      CREATE TABLE audit_log (
        seq           INTEGER PRIMARY KEY,          -- 1, 2, 3, … without gaps
        time          TEXT NOT NULL,
        principal_id  TEXT,                         -- who acted (null: the server itself)
        action        TEXT NOT NULL,
        target_kind   TEXT,
        target_id     TEXT,
        outcome       TEXT NOT NULL CHECK (outcome IN ('ok', 'refused')),
        details       TEXT NOT NULL,                -- JSON object
        mac           BLOB NOT NULL
      ) STRICT;
      -- Which principals an entry is about (the actor, the target's owners): what a member may read.
      CREATE TABLE audit_subjects (
        principal_id  TEXT NOT NULL,
        seq           INTEGER NOT NULL REFERENCES audit_log (seq),
        PRIMARY KEY (principal_id, seq)
      ) STRICT, WITHOUT ROWID;
    `,
  },
  {
    version: 8,
    name: 'dataset commitments',
    sql: `
      -- The salt of a dataset's commitment in training certificates, SHA-256(salt ‖ SHA-256(file)), hex
      -- (src/enclave/training-certificate.ts): random, shown to the dataset's owner only, so nobody else
      -- can test guesses of the data against a certificate. Datasets from before this version get theirs now.
      ALTER TABLE datasets ADD COLUMN commitment_salt TEXT;
      UPDATE datasets SET commitment_salt = lower(hex(randomblob(32))) WHERE commitment_salt IS NULL;
    `,
  },
  {
    version: 9,
    name: 'safetensors dtype names in model checks',
    sql: `
      -- The addon names dtypes as datasets do ("F32", "I64"; src/vocabulary.ts), and other types by
      -- libtorch's own names ("ComplexFloat"), where it named them as torch does ("float32", "int64",
      -- "complex64"): the parameters and buffers of checks stored before now get the new names, so a
      -- model shows one naming whenever it was uploaded.
      WITH renamed (old, new) AS (VALUES
        ('float64', 'F64'), ('float32', 'F32'), ('float16', 'F16'), ('bfloat16', 'BF16'), ('int64', 'I64'),
        ('int32', 'I32'), ('int16', 'I16'), ('int8', 'I8'), ('uint8', 'U8'), ('bool', 'BOOL'),
        ('complex32', 'ComplexHalf'), ('complex64', 'ComplexFloat'), ('complex128', 'ComplexDouble'), ('qint8', 'QInt8'),
        ('quint8', 'QUInt8'), ('qint32', 'QInt32'), ('quint4x2', 'QUInt4x2'), ('quint2x4', 'QUInt2x4'))
      UPDATE models SET details = json_set(details,
        '$.parameters', json((SELECT json_group_array(json_set(t.value, '$.dtype',
            coalesce((SELECT new FROM renamed WHERE old = json_extract(t.value, '$.dtype')), json_extract(t.value, '$.dtype'))))
          FROM json_each(models.details, '$.parameters') AS t)),
        '$.buffers', json((SELECT json_group_array(json_set(t.value, '$.dtype',
            coalesce((SELECT new FROM renamed WHERE old = json_extract(t.value, '$.dtype')), json_extract(t.value, '$.dtype'))))
          FROM json_each(models.details, '$.buffers') AS t)))
      WHERE json_type(details, '$.parameters') = 'array' AND json_type(details, '$.buffers') = 'array';
    `,
  },
];
