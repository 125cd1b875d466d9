// Generated from openapi.yaml by `npm run openapi`. Do not edit by hand.
export interface paths {
    "/openapi.json": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * This API description (OpenAPI 3.1)
         * @description The OpenAPI 3.1 document generated from the route schemas: the committed openapi.yaml, except that `servers` names the address this request reached, so that clients and the /docs page call the right host and port. Public: no token.
         */
        get: operations["getOpenapi"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/healthz": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Liveness probe
         * @description Answers 200 with `{"status":"ok"}` as long as the process handles requests; it checks nothing else. Public, for process supervisors and orchestrators.
         */
        get: operations["getHealth"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/readyz": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Readiness probe
         * @description Whether the server can do work: the native addon loaded in the pool workers, the store open and the worker pool alive. 200 when all three hold, else 503 with the same body showing which check failed. It also says what data at rest is sealed with (an SGX enclave's sealing key and the enclave's identity, or the development key). Public.
         */
        get: operations["getReadiness"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/models": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * List models
         * @description The models the caller may see, oldest first: its own, those whose policy names it as a reader, and the models trained on its datasets. Metadata only; getModelContent downloads a file.
         */
        get: operations["listModels"];
        put?: never;
        /**
         * Upload a model
         * @description Uploads a TorchScript model as multipart/form-data: exactly one file part, a name, an optional description and an optional policy (ModelPolicyInput as JSON). The model is checked (its operators, and that its forward keeps samples apart) and sealed before the 201; a 422 says why a model was refused. Without a policy only its owner sees it.
         */
        post: operations["createModel"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/models/{id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Get a model
         * @description One model the caller may see: metadata, what the check found, lineage (for a trained model) and release state. The policy is in its owner's view only; a model the caller may not see is 404.
         */
        get: operations["getModel"];
        put?: never;
        post?: never;
        /**
         * Delete a model
         * @description Deletes the model and its sealed file. Owner only (403 for others who see it); 409 while a queued or running training uses it.
         */
        delete: operations["deleteModel"];
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/models/{id}/content": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Download a model file
         * @description Streams the TorchScript file, byte-identical to the upload, with its SHA-256 in `x-content-sha256`. Only the owner may download it (403 for others who see it), and a trained model only once every release approval it needs was given.
         */
        get: operations["getModelContent"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/models/{id}/policy": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        /**
         * Replace a model's policy
         * @description Replaces the model's policy with the one given; omitted fields take their defaults (no readers). Owner only; it applies from the next request on.
         */
        put: operations["setModelPolicy"];
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/models/{id}/certificate": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Get a trained model's signed training certificate
         * @description What the server did to make this model, signed when its training finished: the model file's SHA-256, the source model's, each dataset as a salted commitment (its owner sees the salt), σ, q, steps, ε, δ, clipping and the code version. Inside an enclave the Ed25519 key is bound by the enclave quote the certificate carries (`keyQuote`), so the quote vouches for it; outside one the statement says `"enclave": false`. Check it offline with `bastion attest verify-model`. 404 for a model that was uploaded rather than trained.
         */
        get: operations["getModelCertificate"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/models/{id}/approvals": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Get a model's release approvals
         * @description The release approvals a trained model needs, one per owner of its datasets whose policy says `release: approval`, with each decision given so far and the resulting release state. The list is empty for a model that needs none.
         */
        get: operations["getModelApprovals"];
        put?: never;
        /**
         * Approve or reject a model's release
         * @description Records the caller's decision on the release of a trained model, as the owner of datasets whose policy asks for approval. A decision is final: deciding twice, or on a model that needs no approval, is 409. The model is released once every approval is given, and one rejection keeps it unreleased for good.
         */
        post: operations["decideModelRelease"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/datasets": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * List datasets
         * @description The datasets the caller may see, oldest first: its own and those whose policy names it as a trainer (or everyone). Metadata and public shapes only; only the owner may download the data.
         */
        get: operations["listDatasets"];
        put?: never;
        /**
         * Upload a dataset
         * @description Uploads a dataset as multipart/form-data: exactly one file part (TorchScript, safetensors or CSV), a name, its privacy limit ε and δ, and an optional policy (DatasetPolicyInput as JSON). The file is checked, converted to canonical tensors and sealed before the 201; a 422 says why a file was refused. Without a policy the dataset is private to its owner.
         */
        post: operations["createDataset"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/datasets/{id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Get a dataset
         * @description One dataset the caller may see: metadata, the public shapes and dtypes of its tensors, and its policy. The policy's trainers and the label classes are in the owner's view only; a dataset the caller may not see is 404.
         */
        get: operations["getDataset"];
        put?: never;
        post?: never;
        /**
         * Delete a dataset
         * @description Deletes the dataset and its sealed files. Owner only (403 for others who see it); 409 while a queued or running training uses it.
         */
        delete: operations["deleteDataset"];
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/datasets/{id}/privacy": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Get a dataset's privacy budget
         * @description The dataset's privacy ledger: its limit ε and δ, the ε spent (every release charged to it, composed under the tighter of PLD and RDP) and remaining, and each charge. The owner also sees who caused each charge and how many of its samples each training dropped.
         */
        get: operations["getDatasetPrivacy"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/datasets/{id}/content": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Download a dataset file
         * @description Streams the dataset's file as uploaded, decrypted as it streams, with its SHA-256 in `x-content-sha256`. Owner only: trainers the policy names get 403.
         */
        get: operations["getDatasetContent"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/datasets/{id}/policy": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        /**
         * Replace a dataset's policy
         * @description Replaces the dataset's policy with the one given; omitted fields take their defaults. Owner only. It applies from the next request: trainings already accepted run on, and their charges stand.
         */
        put: operations["setDatasetPolicy"];
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/principals": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * List principals (admin)
         * @description Every active principal, oldest first; revoked principals are left out and tokens are never shown. Admin only.
         */
        get: operations["listPrincipals"];
        put?: never;
        /**
         * Create a principal (admin)
         * @description Creates a member (the default) or admin principal and returns it with a fresh bearer token. The token is shown only in this response; the server keeps only a hash of it. Admin only.
         */
        post: operations["createPrincipal"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/principals/{id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Get a principal (admin)
         * @description One active principal by id; a revoked or unknown id is 404. Admin only.
         */
        get: operations["getPrincipal"];
        put?: never;
        post?: never;
        /**
         * Revoke a principal (admin)
         * @description Revokes a principal: its tokens stop working at once, and its queued and running trainings and its evaluations in flight are cancelled; the answer comes once they have stopped. Admin only; revoking the only active admin is 409.
         */
        delete: operations["deletePrincipal"];
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/whoami": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Who am I
         * @description The principal the bearer token belongs to: id, name, role and creation time. Any valid token may call it, which makes it the simplest check that a token works.
         */
        get: operations["getWhoami"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/trainings/plan": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Plan a training (dry run)
         * @description Computes what a training with this body would do, charging nothing: σ calibrated to the target ε, the sample rate q, the steps, the ε of the model and of its metrics, and what each dataset's budget would show after it. It pre-flights the model as createTraining does (one step on zeros of the datasets' public shapes; 422 with the model's message when it fails), and says how each parameter's per-sample gradients will be computed (`gradients`). It takes the same body as createTraining; `allowed` says whether every budget allows it.
         */
        post: operations["planTraining"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/trainings": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * List trainings
         * @description The trainings the caller created, oldest first, each with its status, progress, plan and result.
         */
        get: operations["listTrainings"];
        put?: never;
        /**
         * Start a training
         * @description Plans the training as planTraining does, pre-flights it (one step on zeros of the datasets' public shapes; 422 with the model's message when it fails), charges every dataset's ledger the whole plan at once, then queues it (202). 409 when a budget does not allow it; 429 when the caller already has as many trainings queued and running as it may.
         */
        post: operations["createTraining"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/trainings/{id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Get a training
         * @description One of the caller's trainings: status, step of total, ε planned and spent so far, throughput, ETA, released metrics, error and result model. Poll it, or follow getTrainingEvents for live updates.
         */
        get: operations["getTraining"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/trainings/{id}/cancel": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Cancel a training
         * @description Cancels a queued or running training and answers once it has stopped (within one step). The ledger keeps the whole planned charge; a training that has already ended is 409.
         */
        post: operations["cancelTraining"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/trainings/{id}/events": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Follow a training's events (SSE)
         * @description Live events of one of the caller's trainings as Server-Sent Events: `state` first, then `progress`, `checkpoint` and `metric` events, until `completed`, `failed` or `cancelled` ends the stream. `curl -N` shows them as they come.
         */
        get: operations["getTrainingEvents"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/evaluations": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * List evaluations in flight
         * @description The evaluations running now that the caller may see: its own, those on its datasets, and every one for an admin. A finished evaluation is not listed: its result was the answer to its createEvaluation.
         */
        get: operations["listEvaluations"];
        put?: never;
        /**
         * Evaluate a model on a dataset
         * @description Runs a model the caller may use on a dataset whose policy allows evaluation and answers with its accuracy: with DP noise under the ε given (charged to the dataset), or exact where the owner allows non-private use. It is pre-flighted first on zeros of the dataset's public shapes (422 with the model's message when that fails, nothing charged); 409 when it was cancelled meanwhile.
         */
        post: operations["createEvaluation"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/evaluations/{id}/cancel": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Cancel an evaluation
         * @description Cancels an evaluation in flight, by whoever asked for it, the dataset's owner or an admin. Its charge stands and nothing is released.
         */
        post: operations["cancelEvaluation"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/audit": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Read the audit log
         * @description A page of audit log entries after a seq, oldest first: an admin reads every entry, a member those it made or that concern what it owns. Follow `next` for the next page; whether the log is intact is checked offline by `bastion audit verify`.
         */
        get: operations["listAudit"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/attestation": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Attest the server
         * @description A fresh DCAP quote from the enclave whose report data is SHA-256(the TLS public key, SPKI DER) ‖ SHA-256(nonce), with the certificate and the identity it states. Check the quote (signatures up to Intel, the expected MRENCLAVE) and that the certificate is the one this connection presented before sending anything. No token. 503 outside an enclave. At most 20 a minute from one address (429 with Retry-After).
         */
        get: operations["getAttestation"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/metrics": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Server metrics in the Prometheus text format (admin only)
         * @description Training queue and running trainings, training steps and step rate, worker pool threads, queue and utilisation, upload bytes by kind, HTTP request durations by method, route pattern and status code, and Node process metrics. Counts, sizes and timing only: no ids, names or figures computed from data.
         */
        get: operations["getMetrics"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
}
export type webhooks = Record<string, never>;
export interface components {
    schemas: {
        /**
         * Problem
         * @description RFC 9457 problem details
         */
        Problem: {
            /** @description URI identifying the problem type, urn:bastion:problem:<slug> */
            type: string;
            title: string;
            status: number;
            detail?: string;
            instance?: string;
            /** @description Id under which the server logged the failure */
            requestId?: string;
            /** @description Every problem found in the request (validation) */
            errors?: {
                /** @description JSON pointer (RFC 6901) into the request body */
                pointer?: string;
                /** @description Name of the path or query parameter */
                parameter?: string;
                /** @description Name of the header */
                header?: string;
                detail: string;
            }[];
        } & {
            [key: string]: unknown;
        };
        /** Principal */
        Principal: {
            /** Format: uuid */
            id: string;
            name: string;
            /**
             * @description admin: manages principals; member: uploads, trains and downloads as policies allow
             * @enum {string}
             */
            role: "admin" | "member";
            /** Format: date-time */
            createdAt: string;
        };
        /**
         * ModelPolicyInput
         * @description A model's policy as given; omitted fields take their defaults
         */
        ModelPolicyInput: {
            /** @description Principals besides the owner who may see the model and train or evaluate with it; default: nobody */
            readers?: string[];
        };
        /**
         * ModelPolicy
         * @description Who besides its owner may see the model and train or evaluate with it
         */
        ModelPolicy: {
            readers: string[];
        };
        /** Model */
        Model: {
            /** Format: uuid */
            id: string;
            /** Format: uuid */
            ownerId: string;
            name: string;
            description: string;
            /** @enum {string} */
            format: "torchscript";
            /** @description SHA-256 of the uploaded file, hex */
            sha256: string;
            sizeBytes: number;
            /** Format: date-time */
            createdAt: string;
            /** @description What the model check found */
            check: {
                methods: string[];
                parameters: {
                    name: string;
                    shape: number[];
                    /** @description safetensors dtype name (F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL); libtorch's name for other types, e.g. ComplexFloat */
                    dtype: string;
                    requiresGrad?: boolean;
                }[];
                buffers: {
                    name: string;
                    shape: number[];
                    /** @description safetensors dtype name (F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL); libtorch's name for other types, e.g. ComplexFloat */
                    dtype: string;
                    requiresGrad?: boolean;
                }[];
                parameterCount: number;
                /** @description Operator kinds of the inlined forward graph */
                operators: string[];
                /** @description Input ranks (the sample dimension included; comma-separated when forward takes several inputs) at which forward was shown to keep samples apart; trainings and evaluations need datasets whose inputs have one of them. Empty: checked before that analysis existed; upload the model again */
                inputRanks: string[];
            };
            /** @description Where a trained model came from (present on models produced by a training) */
            lineage?: {
                /** Format: uuid */
                trainingId: string;
                /** Format: uuid */
                sourceModelId: string;
                datasetIds: string[];
                private: boolean;
                /** @description σ; 0 when not private */
                noiseMultiplier: number;
                /** @description q; 0 when not private */
                sampleRate: number;
                steps: number;
                epochs: number;
                expectedBatchSize: number;
                epsilon: number | null;
                delta: number | null;
                accountant: ("rdp" | "pld") | null;
                maxGradNorm: number | null;
                clipping: ("flat" | "per-layer") | null;
                /** @enum {string} */
                loss: "cross_entropy" | "nll" | "mse" | "l1" | "bce_with_logits";
                /** @description type, learningRate and the parameters given */
                optimizer: {
                    [key: string]: unknown;
                };
                /** @description version of the server code that trained it */
                codeVersion: string;
            };
            /** @description Owners of the datasets a trained model was trained on: they see its metadata, lineage and approvals. Empty for an uploaded model */
            coOwnerIds: string[];
            /**
             * @description Whether the model may leave: released (every approval its datasets asked for was given, or none was asked), pending, or rejected (final). An unreleased model cannot be downloaded or trained further, and is evaluated only with DP
             * @enum {string}
             */
            release: "released" | "pending" | "rejected";
            policy?: components["schemas"]["ModelPolicy"];
        };
        /** ModelApprovals */
        ModelApprovals: {
            /** Format: uuid */
            modelId: string;
            /**
             * @description Whether the model may leave: released (every approval its datasets asked for was given, or none was asked), pending, or rejected (final). An unreleased model cannot be downloaded or trained further, and is evaluated only with DP
             * @enum {string}
             */
            release: "released" | "pending" | "rejected";
            /** @description Every approval the release needs; empty when none of its datasets asks for one */
            approvals: {
                /**
                 * Format: uuid
                 * @description Owner of datasets whose policy asks for approval
                 */
                approverId: string;
                datasetIds: string[];
                /** @description null while pending */
                decision: ("approve" | "reject") | null;
                reason: string | null;
                decidedAt: string | null;
            }[];
        };
        TrainingCertificate: {
            statement: {
                /** @enum {string} */
                format: "bastion.training-certificate/1";
                modelId: string;
                trainingId: string;
                /** @description SHA-256 of the trained model file as downloaded */
                modelSha256: string;
                sourceModelId: string;
                /** @description SHA-256 of the model file training started from */
                sourceModelSha256: string;
                datasets: {
                    id: string;
                    /** @description SHA-256(salt ‖ SHA-256(uploaded file)); the salt is shown to the dataset's owner only */
                    commitment: string;
                }[];
                /** @description trained with DP-SGD */
                private: boolean;
                /** @description σ (0 when not private) */
                noiseMultiplier: number;
                /** @description q (0 when not private) */
                sampleRate: number;
                steps: number;
                /** @description ε of the training at δ (null when not private) */
                epsilon: number | null;
                delta: number | null;
                accountant: "rdp" | "pld" | null;
                /** @description clipping bound C */
                maxGradNorm: number | null;
                clipping: "flat" | "per-layer" | null;
                codeVersion: string;
                /** Format: date-time */
                finishedAt: string;
                /** @description signed inside an SGX enclave by a key its quote binds; false: by the development key, attested by nothing */
                enclave: boolean;
            };
            /** @description Ed25519 signature, base64, over "bastion.training-certificate/1\n" ‖ the statement as RFC 8785 canonical JSON */
            signature: string;
            /** @description the Ed25519 public key, base64 of its 32 raw bytes */
            publicKey: string;
            /** @description inside an enclave: the DCAP quote whose report data is SHA-256("bastion.training-certificate-key/1\n" ‖ publicKey) ‖ 32 zero bytes */
            keyQuote?: string;
        };
        /**
         * DatasetPolicyInput
         * @description A dataset's policy as given; omitted fields take their defaults
         */
        DatasetPolicyInput: {
            /** @description Principals besides the owner who may see the dataset and train on it (or "everyone"); default: nobody */
            trainers?: string[] | "everyone";
            /** @description Largest ε one training or evaluation may ask for (metrics included); default: no limit but the budget */
            maxEpsilonPerTraining?: number;
            /** @description Whether trainers may evaluate models on it (default true) */
            allowEvaluation?: boolean;
            /** @description Whether trainings and evaluations without DP may use it (default false) */
            allowNonPrivate?: boolean;
            /**
             * @description Who may download a model trained on it: whoever trained it (trainer), or only once the owner approved (approval); default trainer
             * @enum {string}
             */
            release?: "trainer" | "approval";
        };
        /**
         * DatasetPolicy
         * @description A dataset's policy, as in force
         */
        DatasetPolicy: {
            /** @description Principals besides the owner who may see and train on the dataset, or "everyone"; in the owner's view only */
            trainers?: string[] | "everyone";
            /** @description Largest ε one training (metrics included) or evaluation may spend; absent: no limit but the budget */
            maxEpsilonPerTraining?: number;
            /** @description Whether trainers may evaluate models on it */
            allowEvaluation: boolean;
            /** @description Whether trainings and evaluations without DP may use it */
            allowNonPrivate: boolean;
            /**
             * @description trainer: whoever trained a model may download it; approval: only once the owner approved
             * @enum {string}
             */
            release: "trainer" | "approval";
        };
        /** Dataset */
        Dataset: {
            /** Format: uuid */
            id: string;
            /** Format: uuid */
            ownerId: string;
            name: string;
            description: string;
            /** @enum {string} */
            format: "torchscript" | "safetensors" | "csv";
            /** @description SHA-256 of the uploaded file, hex; only in the owner's view (a hash lets whoever knows all records but one test guesses of the last) */
            sha256?: string;
            /** @description Size of the uploaded file; only in the owner's view (a text file's size moves with its values) */
            sizeBytes?: number;
            /** @description Only in the owner's view: the salt of this dataset's commitment in training certificates, SHA-256(salt ‖ SHA-256(file)) */
            commitmentSalt?: string;
            /** @description Total ε the owner allows all trainings to spend */
            privacyLimit: number;
            /** @description δ of every guarantee given on this dataset */
            delta: number;
            /** @description Whether trainings without DP may use it (the policy's allowNonPrivate) */
            allowNonPrivate: boolean;
            policy: components["schemas"]["DatasetPolicy"];
            sampleCount: number;
            inputs: {
                /** @description inputs.<i> or labels */
                name: string;
                /**
                 * @description safetensors dtype
                 * @enum {string}
                 */
                dtype: "F64" | "F32" | "F16" | "BF16" | "I64" | "I32" | "I16" | "I8" | "U8" | "BOOL";
                /** @description shape[0] is the sample count */
                shape: number[];
            }[];
            labels: {
                /** @description inputs.<i> or labels */
                name: string;
                /**
                 * @description safetensors dtype
                 * @enum {string}
                 */
                dtype: "F64" | "F32" | "F16" | "BF16" | "I64" | "I32" | "I16" | "I8" | "U8" | "BOOL";
                /** @description shape[0] is the sample count */
                shape: number[];
            };
            /** @description Distinct integer labels, null for float labels; only in the owner's view */
            labelClasses?: number[] | null;
            /** Format: date-time */
            createdAt: string;
        };
        /** ParameterRule */
        ParameterRule: {
            /** @description the trainable parameter, as named_parameters() names it */
            parameter: string;
            /** @description how its per-sample gradients are computed: a rule of its layer ("linear", "conv2d", "embedding", "layer_norm", "lstm", …; "a+b" when tied), or "fallback": the exact path, one sample at a time, which costs about one forward and backward per sample */
            rule: string;
            /** @description for "fallback", why no rule applies; for a tied parameter, that its contributions are summed; else "" */
            reason: string;
        };
        /** TrainingPlan */
        TrainingPlan: {
            /** Format: uuid */
            modelId: string;
            datasetIds: string[];
            private: boolean;
            /** @description N, pooled over the datasets */
            sampleCount: number;
            epochs: number;
            expectedBatchSize: number;
            maxPhysicalBatchSize: number;
            /** @description q = expectedBatchSize / N (Poisson); 0 when not private */
            sampleRate: number;
            steps: number;
            /** @description σ calibrated to targetEpsilon; 0 when not private */
            noiseMultiplier: number;
            maxGradNorm: number | null;
            clipping: ("flat" | "per-layer") | null;
            /** @description the accountant that calibrated σ */
            accountant: ("rdp" | "pld") | null;
            /** @description the smallest δ of the datasets: the guarantee holds at each */
            delta: number | null;
            /** @description the trained model's ε at delta (the training without its metrics), composed as the ledger does: the tighter of PLD and RDP, at most the calibrating accountant's figure */
            epsilon: number | null;
            /** @description ε at delta of what is charged (the training and its metrics as one mechanism), exactly as the ledger records it for a dataset with no history */
            epsilonTotal: number | null;
            /** @description the mean training loss per epoch; null: none is released */
            metrics: {
                /** @description what the metrics add: epsilonTotal − epsilon, at most metricsEpsilon; null when exact (non-private) */
                epsilon: number | null;
                /** @description σ_m: the noise on each step’s clamped loss sum is σ_m · lossBound; 0 when exact */
                noiseMultiplier: number;
                /** @description L; null when exact */
                lossBound: number | null;
                /** @description one per epoch (the last may be partial) */
                releases: number;
            } | null;
            datasets: {
                /** Format: uuid */
                datasetId: string;
                privacyLimit: number;
                delta: number;
                /** @description before this training */
                epsilonSpent: number;
                /** @description spent once this training and its metrics are composed in */
                epsilonAfter: number;
                epsilonRemainingAfter: number;
                allowed: boolean;
            }[];
            /** @description every dataset budget allows it */
            allowed: boolean;
            /** @description for a private training, how the DP engine computes each trainable parameter's per-sample gradients, as the pre-flight found it on zeros of the datasets' shapes; null when not private; absent from plans made before it was reported */
            gradients?: components["schemas"]["ParameterRule"][] | null;
        };
        /** TrainingMetric */
        TrainingMetric: {
            epoch: number;
            /** @description the epoch’s last step, when it was released */
            step: number;
            /** @description steps whose losses it covers */
            steps: number;
            /** @description mean per-sample training loss over the epoch; private: of losses clamped to [0, L], with Gaussian noise */
            meanLoss: number;
            /** @description standard deviation of the noise in meanLoss; 0 when exact */
            noiseStd: number;
        };
        /** Training */
        Training: {
            /** Format: uuid */
            id: string;
            /** Format: uuid */
            ownerId: string;
            /** @enum {string} */
            status: "queued" | "running" | "succeeded" | "failed" | "cancelled";
            /**
             * Format: uuid
             * @description the source model
             */
            modelId: string;
            datasetIds: string[];
            request: {
                /**
                 * Format: uuid
                 * @description One of the caller's models
                 */
                modelId: string;
                /** @description Trained on their union; each ledger is charged */
                datasetIds: string[];
                epochs: number;
                /** @description q · N: Poisson sampling rate times the pooled sample count */
                expectedBatchSize: number;
                /** @description largest batch one forward sees (memory); default expectedBatchSize */
                maxPhysicalBatchSize?: number;
                /** @enum {string} */
                loss: "cross_entropy" | "nll" | "mse" | "l1" | "bce_with_logits";
                /** @description cross_entropy only */
                labelSmoothing?: number;
                optimizer: {
                    /** @enum {string} */
                    type: "sgd" | "adam" | "adamw";
                    learningRate: number;
                    /** @description sgd */
                    momentum?: number;
                    /** @description sgd */
                    dampening?: number;
                    /** @description sgd; needs momentum > 0 and dampening 0 */
                    nesterov?: boolean;
                    weightDecay?: number;
                    /** @description adam, adamw: [β1, β2] */
                    betas?: number[];
                    /** @description adam, adamw */
                    eps?: number;
                };
                privacy?: {
                    /** @description ε this training may spend on each dataset */
                    targetEpsilon: number;
                    /** @description C: per-sample clipping bound */
                    maxGradNorm: number;
                    /**
                     * @description default flat; per-layer gives each layer C/√layers
                     * @enum {string}
                     */
                    clipping?: "flat" | "per-layer";
                    /**
                     * @description calibrates σ; default pld (the tighter: the same ε buys less noise). Where PLD would need more than its bounded work (very large ε), RDP calibrates and the plan says so
                     * @enum {string}
                     */
                    accountant?: "rdp" | "pld";
                };
                /** @description false: no clipping or noise, only where every dataset allows non-private use */
                private?: boolean;
                /** @description private trainings: the ε that releasing the noisy mean training loss at the end of every epoch adds to the training (the ledger is charged both as one mechanism of ε ≤ targetEpsilon + metricsEpsilon; the model’s own noise is unchanged); 0 (default) releases none. Non-private trainings release the exact mean loss. */
                metricsEpsilon?: number;
                /** @description L: per-sample losses are clamped to [0, L] before the noisy sum (noise ∝ L); default 5; only with metricsEpsilon > 0 */
                metricsLossBound?: number;
            };
            plan: components["schemas"]["TrainingPlan"];
            /** @description steps run */
            step: number;
            totalSteps: number;
            /** @description epochs run so far (fractional): step · sampleRate for a private training, step · epochs / totalSteps otherwise */
            epoch: number;
            /** @description the plan's total ε, metrics included (charged to every dataset when the training was accepted); null when not private */
            epsilonPlanned: number | null;
            /** @description ε of the steps run so far, at the plan’s δ; the ledger holds the whole planned charge */
            epsilonSpent: number | null;
            /** @description δ of both ε figures */
            delta: number | null;
            /** @description expected throughput: recent steps per second times the mean batch size the plan fixes (sampleRate · sampleCount for a private training), never a count of the records actually sampled (under Poisson sampling that count is private); the last measured once the job stopped */
            samplesPerSec: number | null;
            /** @description estimated seconds to the end while running: steps left divided by the recent steps per second */
            etaSeconds: number | null;
            /** @description step of the latest sealed checkpoint */
            checkpointStep: number | null;
            /** @description the per-epoch metrics released so far, oldest first */
            metrics: components["schemas"]["TrainingMetric"][];
            /** @description why the training failed */
            error: string | null;
            /** @description the trained model (a model artifact of the owner, with lineage), once succeeded */
            resultModelId: string | null;
            /** Format: date-time */
            createdAt: string;
            startedAt: string | null;
            finishedAt: string | null;
        };
        /** DatasetPrivacy */
        DatasetPrivacy: {
            /** Format: uuid */
            datasetId: string;
            privacyLimit: number;
            delta: number;
            /** @description composition of every event under the tighter of PLD and RDP */
            epsilonSpent: number;
            epsilonRemaining: number;
            /** @enum {string} */
            accountant: "rdp" | "pld";
            events: {
                id: string;
                /** @description poisson-gaussian {sampleRate, noiseMultiplier, count}, gaussian {noiseMultiplier, count} or discrete-gaussian {sigmaSquared, sensitivity, count} */
                event: {
                    [key: string]: unknown;
                };
                source: {
                    kind: string;
                    id: string;
                };
                /** @description whose request caused the charge, for the dataset's owner only (null for charges recorded before this was kept) */
                principalId?: string | null;
                /** Format: date-time */
                createdAt: string;
                /** @description a training's events, for the dataset's owner only, once the training has ended or stopped: how many of this dataset's samples the private training dropped, and why (each drop changes the clipped sum by at most C, so the guarantee holds). Computed from the data, so never shown to the model's author */
                dropped?: {
                    /** @description the model's forward, the loss or the backward threw (e.g. a label out of range) */
                    exception: number;
                    /** @description the per-sample loss was NaN or infinite */
                    nonFiniteLoss: number;
                    /** @description the per-sample gradient (its norm) was NaN or infinite */
                    nonFiniteGradient: number;
                };
            }[];
        };
        /** Evaluation */
        Evaluation: {
            /** Format: uuid */
            id: string;
            /** Format: uuid */
            modelId: string;
            /** Format: uuid */
            datasetId: string;
            samples: number;
            private: boolean;
            /** @description noisy when private; null for regression losses */
            accuracy: number | null;
            /** @description standard deviation of the noise on accuracy: √Var[N_Z(0, σ²)] / units (≤ σ / units); 0 when exact */
            accuracyNoiseStd: number;
            /** @description mean loss, exact evaluations only */
            loss: number | null;
            /** @description ε charged; the release is (ε, δ)-DP by its exact δ(ε) (CKS20 Theorem 7) */
            epsilon: number | null;
            /** @description the dataset's δ */
            delta: number | null;
            /** @description σ/Δ of the discrete Gaussian N_Z(0, σ²) added to the correct count of sensitivity Δ (the ledger event holds σ² exactly); null when exact */
            noiseMultiplier: number | null;
        };
        /**
         * EvaluationRun
         * @description An evaluation in flight
         */
        EvaluationRun: {
            /** Format: uuid */
            id: string;
            /**
             * Format: uuid
             * @description who asked for it
             */
            ownerId: string;
            /** Format: uuid */
            modelId: string;
            /** Format: uuid */
            datasetId: string;
            private: boolean;
            epsilon: number | null;
            /** @enum {string} */
            status: "running" | "cancelled";
            /** Format: date-time */
            startedAt: string;
        };
        /** AuditEntry */
        AuditEntry: {
            /** @description Position in the log: 1, 2, 3, … without gaps */
            seq: number;
            /** Format: date-time */
            time: string;
            principalId: string | null;
            /** @description <noun>.<verb>, e.g. dataset.create, training.cancel, ledger.charge */
            action: string;
            target: {
                /** @enum {string} */
                kind: "principal" | "dataset" | "model" | "training" | "evaluation";
                id: string;
            } | null;
            /**
             * @description refused: an access the server denied
             * @enum {string}
             */
            outcome: "ok" | "refused";
            /** @description Facts of the change (never data values, tokens or keys) */
            details: {
                [key: string]: unknown;
            };
        };
    };
    responses: never;
    parameters: never;
    requestBodies: never;
    headers: never;
    pathItems: never;
}
export type $defs = Record<string, never>;
export interface operations {
    getOpenapi: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        [key: string]: unknown;
                    };
                };
            };
            /** @description Internal server error (logged under requestId) */
            500: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    getHealth: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        /** @enum {string} */
                        status: "ok";
                    };
                };
            };
        };
    };
    getReadiness: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        status: "ready" | "not-ready";
                        checks: {
                            addon: boolean;
                            store: boolean;
                            pool: boolean;
                        };
                        /** @description What data at rest is sealed with: the SGX enclave's sealing key (and the enclave's identity), or the development key file */
                        keys: {
                            /** @enum {string} */
                            provider: "development";
                        } | {
                            /** @enum {string} */
                            provider: "enclave";
                            /** @enum {string} */
                            sealingKey: "mrenclave" | "mrsigner";
                            identity: {
                                /** @description hex: the measurement of the enclave's code and data */
                                mrenclave: string;
                                /** @description hex: the hash of the key that signed the enclave */
                                mrsigner: string;
                                isvProdId: number;
                                isvSvn: number;
                                /** @description a debug enclave's memory is readable by the host */
                                debug: boolean;
                            };
                        };
                    };
                };
            };
            /** @description Default Response */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        status: "ready" | "not-ready";
                        checks: {
                            addon: boolean;
                            store: boolean;
                            pool: boolean;
                        };
                        /** @description What data at rest is sealed with: the SGX enclave's sealing key (and the enclave's identity), or the development key file */
                        keys: {
                            /** @enum {string} */
                            provider: "development";
                        } | {
                            /** @enum {string} */
                            provider: "enclave";
                            /** @enum {string} */
                            sealingKey: "mrenclave" | "mrsigner";
                            identity: {
                                /** @description hex: the measurement of the enclave's code and data */
                                mrenclave: string;
                                /** @description hex: the hash of the key that signed the enclave */
                                mrsigner: string;
                                isvProdId: number;
                                isvSvn: number;
                                /** @description a debug enclave's memory is readable by the host */
                                debug: boolean;
                            };
                        };
                    };
                };
            };
        };
    };
    listModels: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        items: components["schemas"]["Model"][];
                    };
                };
            };
            /** @description The request is malformed or fails validation */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Missing, malformed, revoked or unknown bearer token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Internal server error (logged under requestId) */
            500: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    createModel: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "multipart/form-data": {
                    /**
                     * Format: binary
                     * @description The file; any part name is accepted, exactly one file part
                     */
                    file: Blob;
                    /** @description printable text: no control or bidirectional formatting characters */
                    name: string;
                    description?: string;
                    /** @description The model policy as JSON (ModelPolicyInput), e.g. {"readers":["<principal id>"]}; default: owner only */
                    policy?: string;
                };
            };
        };
        responses: {
            /** @description Default Response */
            201: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Model"];
                };
            };
            /** @description The request is malformed or fails validation */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Missing, malformed, revoked or unknown bearer token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The request body is too large */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Unsupported content type */
            415: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Well-formed but unusable content */
            422: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Internal server error (logged under requestId) */
            500: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    getModel: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description Resource id (UUID) */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Model"];
                };
            };
            /** @description The request is malformed or fails validation */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Missing, malformed, revoked or unknown bearer token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description No such resource (or one the caller may not see) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Internal server error (logged under requestId) */
            500: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    deleteModel: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description Resource id (UUID) */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Deleted */
            204: {
                headers: {
                    [name: string]: unknown;
                };
                content?: never;
            };
            /** @description The request is malformed or fails validation */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Missing, malformed, revoked or unknown bearer token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The principal is not allowed to do this */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description No such resource (or one the caller may not see) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The request conflicts with the current state */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Internal server error (logged under requestId) */
            500: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    getModelContent: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description Resource id (UUID) */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The file as uploaded, decrypted as it streams */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/octet-stream": Blob;
                };
            };
            /** @description The request is malformed or fails validation */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Missing, malformed, revoked or unknown bearer token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The principal is not allowed to do this */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description No such resource (or one the caller may not see) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Internal server error (logged under requestId) */
            500: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    setModelPolicy: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description Resource id (UUID) */
                id: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["ModelPolicyInput"];
            };
        };
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Model"];
                };
            };
            /** @description The request is malformed or fails validation */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Missing, malformed, revoked or unknown bearer token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The principal is not allowed to do this */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description No such resource (or one the caller may not see) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Unsupported content type */
            415: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Well-formed but unusable content */
            422: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Internal server error (logged under requestId) */
            500: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    getModelCertificate: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description Resource id (UUID) */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["TrainingCertificate"];
                };
            };
            /** @description The request is malformed or fails validation */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Missing, malformed, revoked or unknown bearer token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description No such resource (or one the caller may not see) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Internal server error (logged under requestId) */
            500: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    getModelApprovals: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description Resource id (UUID) */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ModelApprovals"];
                };
            };
            /** @description The request is malformed or fails validation */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Missing, malformed, revoked or unknown bearer token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description No such resource (or one the caller may not see) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Internal server error (logged under requestId) */
            500: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    decideModelRelease: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description Resource id (UUID) */
                id: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": {
                    /**
                     * @description A decision is final
                     * @enum {string}
                     */
                    decision: "approve" | "reject";
                    reason?: string;
                };
            };
        };
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ModelApprovals"];
                };
            };
            /** @description The request is malformed or fails validation */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Missing, malformed, revoked or unknown bearer token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The principal is not allowed to do this */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description No such resource (or one the caller may not see) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The request conflicts with the current state */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Unsupported content type */
            415: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Internal server error (logged under requestId) */
            500: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    listDatasets: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        items: components["schemas"]["Dataset"][];
                    };
                };
            };
            /** @description The request is malformed or fails validation */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Missing, malformed, revoked or unknown bearer token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Internal server error (logged under requestId) */
            500: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    createDataset: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "multipart/form-data": {
                    /**
                     * Format: binary
                     * @description The file; any part name is accepted, exactly one file part
                     */
                    file: Blob;
                    /** @description printable text: no control or bidirectional formatting characters */
                    name: string;
                    description?: string;
                    /** @enum {string} */
                    format?: "torchscript" | "safetensors" | "csv";
                    /** @description ε; required unless a TorchScript file carries privacy_limit */
                    privacyLimit?: number;
                    /** @description δ; default min(1e-5, 1/(10·samples)); must be below 1/samples */
                    delta?: number;
                    /** @description CSV: the label column (default label, labels, target or y, else the last) */
                    labelColumn?: string;
                    /** @description Allow trainings without DP (default false); the same as the policy's allowNonPrivate */
                    allowNonPrivate?: boolean;
                    /** @description The dataset policy as JSON (DatasetPolicyInput), e.g. {"trainers":["<principal id>"],"release":"approval"}; default: owner only */
                    policy?: string;
                };
            };
        };
        responses: {
            /** @description Default Response */
            201: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Dataset"];
                };
            };
            /** @description The request is malformed or fails validation */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Missing, malformed, revoked or unknown bearer token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The request body is too large */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Unsupported content type */
            415: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Well-formed but unusable content */
            422: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Internal server error (logged under requestId) */
            500: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    getDataset: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description Resource id (UUID) */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Dataset"];
                };
            };
            /** @description The request is malformed or fails validation */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Missing, malformed, revoked or unknown bearer token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description No such resource (or one the caller may not see) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Internal server error (logged under requestId) */
            500: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    deleteDataset: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description Resource id (UUID) */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Deleted */
            204: {
                headers: {
                    [name: string]: unknown;
                };
                content?: never;
            };
            /** @description The request is malformed or fails validation */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Missing, malformed, revoked or unknown bearer token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The principal is not allowed to do this */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description No such resource (or one the caller may not see) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The request conflicts with the current state */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Internal server error (logged under requestId) */
            500: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    getDatasetPrivacy: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description Resource id (UUID) */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["DatasetPrivacy"];
                };
            };
            /** @description The request is malformed or fails validation */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Missing, malformed, revoked or unknown bearer token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description No such resource (or one the caller may not see) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Internal server error (logged under requestId) */
            500: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    getDatasetContent: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description Resource id (UUID) */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The file as uploaded, decrypted as it streams */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/octet-stream": Blob;
                };
            };
            /** @description The request is malformed or fails validation */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Missing, malformed, revoked or unknown bearer token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The principal is not allowed to do this */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description No such resource (or one the caller may not see) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Internal server error (logged under requestId) */
            500: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    setDatasetPolicy: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description Resource id (UUID) */
                id: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["DatasetPolicyInput"];
            };
        };
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Dataset"];
                };
            };
            /** @description The request is malformed or fails validation */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Missing, malformed, revoked or unknown bearer token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The principal is not allowed to do this */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description No such resource (or one the caller may not see) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Unsupported content type */
            415: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Well-formed but unusable content */
            422: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Internal server error (logged under requestId) */
            500: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    listPrincipals: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        items: components["schemas"]["Principal"][];
                    };
                };
            };
            /** @description The request is malformed or fails validation */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Missing, malformed, revoked or unknown bearer token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The principal is not allowed to do this */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Internal server error (logged under requestId) */
            500: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    createPrincipal: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": {
                    /** @description Display name, e.g. "hospital-a" or "ci-pipeline"; printable characters only (no control or bidirectional formatting characters) */
                    name: string;
                    /**
                     * @description admin: manages principals; member: uploads, trains and downloads as policies allow
                     * @enum {string}
                     */
                    role?: "admin" | "member";
                };
            };
        };
        responses: {
            /** @description Default Response */
            201: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        /** Format: uuid */
                        id: string;
                        name: string;
                        /**
                         * @description admin: manages principals; member: uploads, trains and downloads as policies allow
                         * @enum {string}
                         */
                        role: "admin" | "member";
                        /** Format: date-time */
                        createdAt: string;
                        /** @description Bearer token. Shown only in this response; store it now. */
                        token: string;
                    };
                };
            };
            /** @description The request is malformed or fails validation */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Missing, malformed, revoked or unknown bearer token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The principal is not allowed to do this */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Unsupported content type */
            415: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Internal server error (logged under requestId) */
            500: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    getPrincipal: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description Resource id (UUID) */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Principal"];
                };
            };
            /** @description The request is malformed or fails validation */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Missing, malformed, revoked or unknown bearer token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The principal is not allowed to do this */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description No such resource (or one the caller may not see) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Internal server error (logged under requestId) */
            500: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    deletePrincipal: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description Resource id (UUID) */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Revoked */
            204: {
                headers: {
                    [name: string]: unknown;
                };
                content?: never;
            };
            /** @description The request is malformed or fails validation */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Missing, malformed, revoked or unknown bearer token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The principal is not allowed to do this */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description No such resource (or one the caller may not see) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The request conflicts with the current state */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Internal server error (logged under requestId) */
            500: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    getWhoami: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Principal"];
                };
            };
            /** @description The request is malformed or fails validation */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Missing, malformed, revoked or unknown bearer token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Internal server error (logged under requestId) */
            500: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    planTraining: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": {
                    /**
                     * Format: uuid
                     * @description One of the caller's models
                     */
                    modelId: string;
                    /** @description Trained on their union; each ledger is charged */
                    datasetIds: string[];
                    epochs: number;
                    /** @description q · N: Poisson sampling rate times the pooled sample count */
                    expectedBatchSize: number;
                    /** @description largest batch one forward sees (memory); default expectedBatchSize */
                    maxPhysicalBatchSize?: number;
                    /** @enum {string} */
                    loss: "cross_entropy" | "nll" | "mse" | "l1" | "bce_with_logits";
                    /** @description cross_entropy only */
                    labelSmoothing?: number;
                    optimizer: {
                        /** @enum {string} */
                        type: "sgd" | "adam" | "adamw";
                        learningRate: number;
                        /** @description sgd */
                        momentum?: number;
                        /** @description sgd */
                        dampening?: number;
                        /** @description sgd; needs momentum > 0 and dampening 0 */
                        nesterov?: boolean;
                        weightDecay?: number;
                        /** @description adam, adamw: [β1, β2] */
                        betas?: number[];
                        /** @description adam, adamw */
                        eps?: number;
                    };
                    privacy?: {
                        /** @description ε this training may spend on each dataset */
                        targetEpsilon: number;
                        /** @description C: per-sample clipping bound */
                        maxGradNorm: number;
                        /**
                         * @description default flat; per-layer gives each layer C/√layers
                         * @enum {string}
                         */
                        clipping?: "flat" | "per-layer";
                        /**
                         * @description calibrates σ; default pld (the tighter: the same ε buys less noise). Where PLD would need more than its bounded work (very large ε), RDP calibrates and the plan says so
                         * @enum {string}
                         */
                        accountant?: "rdp" | "pld";
                    };
                    /** @description false: no clipping or noise, only where every dataset allows non-private use */
                    private?: boolean;
                    /** @description private trainings: the ε that releasing the noisy mean training loss at the end of every epoch adds to the training (the ledger is charged both as one mechanism of ε ≤ targetEpsilon + metricsEpsilon; the model’s own noise is unchanged); 0 (default) releases none. Non-private trainings release the exact mean loss. */
                    metricsEpsilon?: number;
                    /** @description L: per-sample losses are clamped to [0, L] before the noisy sum (noise ∝ L); default 5; only with metricsEpsilon > 0 */
                    metricsLossBound?: number;
                };
            };
        };
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["TrainingPlan"];
                };
            };
            /** @description The request is malformed or fails validation */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Missing, malformed, revoked or unknown bearer token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The principal is not allowed to do this */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description No such resource (or one the caller may not see) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Unsupported content type */
            415: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Well-formed but unusable content */
            422: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Internal server error (logged under requestId) */
            500: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    listTrainings: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        items: components["schemas"]["Training"][];
                    };
                };
            };
            /** @description The request is malformed or fails validation */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Missing, malformed, revoked or unknown bearer token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Internal server error (logged under requestId) */
            500: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    createTraining: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": {
                    /**
                     * Format: uuid
                     * @description One of the caller's models
                     */
                    modelId: string;
                    /** @description Trained on their union; each ledger is charged */
                    datasetIds: string[];
                    epochs: number;
                    /** @description q · N: Poisson sampling rate times the pooled sample count */
                    expectedBatchSize: number;
                    /** @description largest batch one forward sees (memory); default expectedBatchSize */
                    maxPhysicalBatchSize?: number;
                    /** @enum {string} */
                    loss: "cross_entropy" | "nll" | "mse" | "l1" | "bce_with_logits";
                    /** @description cross_entropy only */
                    labelSmoothing?: number;
                    optimizer: {
                        /** @enum {string} */
                        type: "sgd" | "adam" | "adamw";
                        learningRate: number;
                        /** @description sgd */
                        momentum?: number;
                        /** @description sgd */
                        dampening?: number;
                        /** @description sgd; needs momentum > 0 and dampening 0 */
                        nesterov?: boolean;
                        weightDecay?: number;
                        /** @description adam, adamw: [β1, β2] */
                        betas?: number[];
                        /** @description adam, adamw */
                        eps?: number;
                    };
                    privacy?: {
                        /** @description ε this training may spend on each dataset */
                        targetEpsilon: number;
                        /** @description C: per-sample clipping bound */
                        maxGradNorm: number;
                        /**
                         * @description default flat; per-layer gives each layer C/√layers
                         * @enum {string}
                         */
                        clipping?: "flat" | "per-layer";
                        /**
                         * @description calibrates σ; default pld (the tighter: the same ε buys less noise). Where PLD would need more than its bounded work (very large ε), RDP calibrates and the plan says so
                         * @enum {string}
                         */
                        accountant?: "rdp" | "pld";
                    };
                    /** @description false: no clipping or noise, only where every dataset allows non-private use */
                    private?: boolean;
                    /** @description private trainings: the ε that releasing the noisy mean training loss at the end of every epoch adds to the training (the ledger is charged both as one mechanism of ε ≤ targetEpsilon + metricsEpsilon; the model’s own noise is unchanged); 0 (default) releases none. Non-private trainings release the exact mean loss. */
                    metricsEpsilon?: number;
                    /** @description L: per-sample losses are clamped to [0, L] before the noisy sum (noise ∝ L); default 5; only with metricsEpsilon > 0 */
                    metricsLossBound?: number;
                };
            };
        };
        responses: {
            /** @description Default Response */
            202: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Training"];
                };
            };
            /** @description The request is malformed or fails validation */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Missing, malformed, revoked or unknown bearer token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The principal is not allowed to do this */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description No such resource (or one the caller may not see) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The request conflicts with the current state */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Unsupported content type */
            415: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Well-formed but unusable content */
            422: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The principal has as many jobs queued and running as it may; retry when one has ended */
            429: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Internal server error (logged under requestId) */
            500: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Not ready or overloaded; retry after Retry-After seconds */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    getTraining: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description Resource id (UUID) */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Training"];
                };
            };
            /** @description The request is malformed or fails validation */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Missing, malformed, revoked or unknown bearer token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description No such resource (or one the caller may not see) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Internal server error (logged under requestId) */
            500: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    cancelTraining: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description Resource id (UUID) */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Training"];
                };
            };
            /** @description The request is malformed or fails validation */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Missing, malformed, revoked or unknown bearer token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description No such resource (or one the caller may not see) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The request conflicts with the current state */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Internal server error (logged under requestId) */
            500: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    getTrainingEvents: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description Resource id (UUID) */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Server-Sent Events. `state` first (the job as now), again on every status change; `progress` (at least once a second while running), `checkpoint`, `metric` (an epoch's mean training loss was released: the last of `metrics`); the stream ends after `completed`, `failed` or `cancelled`. Each event's data is the Training as JSON. Comment lines keep the stream alive. */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "text/event-stream": string;
                };
            };
            /** @description The request is malformed or fails validation */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Missing, malformed, revoked or unknown bearer token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description No such resource (or one the caller may not see) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Internal server error (logged under requestId) */
            500: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    listEvaluations: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        items: components["schemas"]["EvaluationRun"][];
                    };
                };
            };
            /** @description The request is malformed or fails validation */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Missing, malformed, revoked or unknown bearer token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Internal server error (logged under requestId) */
            500: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    createEvaluation: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": {
                    /**
                     * Format: uuid
                     * @description One of the caller's models
                     */
                    modelId: string;
                    /** Format: uuid */
                    datasetId: string;
                    /** @enum {string} */
                    loss: "cross_entropy" | "nll" | "mse" | "l1" | "bce_with_logits";
                    /** @description ε to spend (charged to the dataset) on a DP release of the accuracy; absent: exact, only where the dataset's owner allows non-private use */
                    epsilon?: number;
                };
            };
        };
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Evaluation"];
                };
            };
            /** @description The request is malformed or fails validation */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Missing, malformed, revoked or unknown bearer token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The principal is not allowed to do this */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description No such resource (or one the caller may not see) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The request conflicts with the current state */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Unsupported content type */
            415: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Well-formed but unusable content */
            422: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Internal server error (logged under requestId) */
            500: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    cancelEvaluation: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description Resource id (UUID) */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description An evaluation in flight */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["EvaluationRun"];
                };
            };
            /** @description The request is malformed or fails validation */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Missing, malformed, revoked or unknown bearer token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description No such resource (or one the caller may not see) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Internal server error (logged under requestId) */
            500: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    listAudit: {
        parameters: {
            query?: {
                /** @description Return entries after this seq (default 0: from the first) */
                after?: number;
                /** @description Most entries to return (default 100) */
                limit?: number;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        items: components["schemas"]["AuditEntry"][];
                        next: number | null;
                    };
                };
            };
            /** @description The request is malformed or fails validation */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Missing, malformed, revoked or unknown bearer token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Internal server error (logged under requestId) */
            500: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    getAttestation: {
        parameters: {
            query: {
                /** @description fresh random bytes, hex (1–32 bytes) */
                nonce: string;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        /** @description the DCAP quote, base64 */
                        quote: string;
                        /** @description quote format version (3, 4 or 5) */
                        version: number;
                        /** @description hex: SHA-256(TLS public key, SPKI DER) ‖ SHA-256(nonce), as in the quote */
                        reportData: string;
                        /** @description the TLS certificate (PEM) whose public key the quote binds */
                        certificate: string;
                        /** @description as the quote states it (verify the quote before trusting it) */
                        identity: {
                            /** @description hex: the measurement of the enclave's code and data */
                            mrenclave: string;
                            /** @description hex: the hash of the key that signed the enclave */
                            mrsigner: string;
                            isvProdId: number;
                            isvSvn: number;
                            /** @description a debug enclave's memory is readable by the host */
                            debug: boolean;
                        };
                    };
                };
            };
            /** @description The request is malformed or fails validation */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The principal has as many jobs queued and running as it may; retry when one has ended */
            429: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Internal server error (logged under requestId) */
            500: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Not ready or overloaded; retry after Retry-After seconds */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
    getMetrics: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The metrics in the Prometheus text exposition format 0.0.4 */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "text/plain; version=0.0.4; charset=utf-8": string;
                };
            };
            /** @description Missing, malformed, revoked or unknown bearer token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description The principal is not allowed to do this */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
            /** @description Internal server error (logged under requestId) */
            500: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"];
                };
            };
        };
    };
}
