// /v1/models: upload (multipart), list, get, download and delete TorchScript models, replace their
// policy, and the release approvals of trained models. A model is seen by its owner, the readers its
// policy names and, for a trained model, the owners of its datasets (governance/authorize.ts).

import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import {
  createModel,
  decideModelRelease,
  deleteModel,
  getModel,
  getModelApprovals,
  getModelCertificate,
  listModels,
  openModelContent,
  setModelPolicy,
} from '../../artifacts/models.js';
import { type ArtifactDeps, stageUpload } from '../../artifacts/service.js';
import { TrainingCertificateSchema } from '../../enclave/training-certificate.js';
import { modelPolicyFromForm } from '../../governance/policy.js';
import { ModelApprovalsSchema, ModelFieldsSchema, ModelListSchema, ModelSchema, ReleaseDecisionBody } from '../../schemas/artifacts.js';
import { ref } from '../../schemas/common.js';
import { ModelPolicyInputSchema } from '../../schemas/policies.js';
import { sendContent } from '../content.js';
import { principalOf } from '../plugins/auth.js';
import { receiveUpload } from '../plugins/multipart.js';
import { authedProblems, IdParams, problemResponses } from '../schemas/common.js';
import { binaryContent, multipartBody } from '../schemas/uploads.js';

export default async function modelRoutes(root: FastifyInstance, options: { artifacts: ArtifactDeps }) {
  const app = root.withTypeProvider<TypeBoxTypeProvider>();
  const deps = options.artifacts;

  app.post(
    '/v1/models',
    {
      schema: {
        operationId: 'createModel',
        tags: ['models'],
        summary: 'Upload a model',
        description:
          'Uploads a TorchScript model as multipart/form-data: exactly one file part, a name, an optional description and an optional ' +
          'policy (ModelPolicyInput as JSON). The model is checked (its operators, and that its forward keeps samples apart) and sealed ' +
          'before the 201; a 422 says why a model was refused. Without a policy only its owner sees it.',
        response: { 201: ref(ModelSchema), ...problemResponses(...authedProblems, 413, 415, 422) },
      },
      config: { multipartBody: multipartBody(ModelFieldsSchema) },
    },
    async (request, reply) => {
      const owner = principalOf(request);
      const { fields, staged } = await receiveUpload(request, ModelFieldsSchema, (source) => stageUpload(deps, 'model', source));
      let policy: ReturnType<typeof modelPolicyFromForm>;
      try {
        policy = modelPolicyFromForm(fields);
      } catch (err) {
        await staged.discard();
        throw err;
      }
      const model = await createModel(deps, owner, { name: fields.name, description: fields.description ?? '', policy }, staged);
      return reply.code(201).header('location', `/v1/models/${model.id}`).send(model);
    },
  );

  app.get(
    '/v1/models',
    {
      schema: {
        operationId: 'listModels',
        tags: ['models'],
        summary: 'List models',
        description:
          'The models the caller may see, oldest first: its own, those whose policy names it as a reader, and the models trained on its ' +
          'datasets. Metadata only; getModelContent downloads a file.',
        response: { 200: ModelListSchema, ...problemResponses(...authedProblems) },
      },
    },
    async (request) => ({ items: listModels(deps, principalOf(request)) }),
  );

  app.get(
    '/v1/models/:id',
    {
      schema: {
        operationId: 'getModel',
        tags: ['models'],
        summary: 'Get a model',
        description:
          'One model the caller may see: metadata, what the check found, lineage (for a trained model) and release state. The policy is ' +
          "in its owner's view only; a model the caller may not see is 404.",
        params: IdParams,
        response: { 200: ref(ModelSchema), ...problemResponses(...authedProblems, 404) },
      },
    },
    async (request) => getModel(deps, principalOf(request), request.params.id),
  );

  app.get(
    '/v1/models/:id/content',
    {
      schema: {
        operationId: 'getModelContent',
        tags: ['models'],
        summary: 'Download a model file',
        description:
          'Streams the TorchScript file, byte-identical to the upload, with its SHA-256 in `x-content-sha256`. Only the owner may ' +
          'download it (403 for others who see it), and a trained model only once every release approval it needs was given.',
        params: IdParams,
        response: { 200: binaryContent, ...problemResponses(...authedProblems, 403, 404) },
      },
    },
    async (request, reply) => {
      const { model, content } = await openModelContent(deps, principalOf(request), request.params.id);
      return sendContent(reply, { name: `${model.id}.pt`, sha256: model.sha256 }, content);
    },
  );

  app.delete(
    '/v1/models/:id',
    {
      schema: {
        operationId: 'deleteModel',
        tags: ['models'],
        summary: 'Delete a model',
        description:
          'Deletes the model and its sealed file. Owner only (403 for others who see it); 409 while a queued or running training uses ' +
          'it.',
        params: IdParams,
        response: { 204: Type.Null({ description: 'Deleted' }), ...problemResponses(...authedProblems, 403, 404, 409) },
      },
    },
    async (request, reply) => {
      await deleteModel(deps, principalOf(request), request.params.id);
      return reply.code(204).send(null);
    },
  );

  app.put(
    '/v1/models/:id/policy',
    {
      schema: {
        operationId: 'setModelPolicy',
        tags: ['models'],
        summary: "Replace a model's policy",
        description:
          "Replaces the model's policy with the one given; omitted fields take their defaults (no readers). Owner only; it applies from " +
          'the next request on.',
        params: IdParams,
        body: ref(ModelPolicyInputSchema),
        response: { 200: ref(ModelSchema), ...problemResponses(...authedProblems, 403, 404, 415, 422) },
      },
    },
    async (request) => setModelPolicy(deps, principalOf(request), request.params.id, request.body),
  );

  app.get(
    '/v1/models/:id/certificate',
    {
      schema: {
        operationId: 'getModelCertificate',
        tags: ['models', 'attestation'],
        summary: "Get a trained model's signed training certificate",
        description:
          "What the server did to make this model, signed when its training finished: the model file's SHA-256, the source model's, " +
          'each dataset as a salted commitment (its owner sees the salt), σ, q, steps, ε, δ, clipping and the code version. Inside an ' +
          'enclave the Ed25519 key is bound by the enclave quote the certificate carries (`keyQuote`), so the quote vouches for it; ' +
          'outside one the statement says `"enclave": false`. Check it offline with `bastion attest verify-model`. 404 for a model that ' +
          'was uploaded rather than trained.',
        params: IdParams,
        response: { 200: ref(TrainingCertificateSchema), ...problemResponses(...authedProblems, 404) },
      },
    },
    async (request) => getModelCertificate(deps, principalOf(request), request.params.id),
  );

  app.get(
    '/v1/models/:id/approvals',
    {
      schema: {
        operationId: 'getModelApprovals',
        tags: ['models'],
        summary: "Get a model's release approvals",
        description:
          'The release approvals a trained model needs, one per owner of its datasets whose policy says `release: approval`, with each ' +
          'decision given so far and the resulting release state. The list is empty for a model that needs none.',
        params: IdParams,
        response: { 200: ref(ModelApprovalsSchema), ...problemResponses(...authedProblems, 404) },
      },
    },
    async (request) => getModelApprovals(deps, principalOf(request), request.params.id),
  );

  app.post(
    '/v1/models/:id/approvals',
    {
      schema: {
        operationId: 'decideModelRelease',
        tags: ['models'],
        summary: "Approve or reject a model's release",
        description:
          "Records the caller's decision on the release of a trained model, as the owner of datasets whose policy asks for approval. A " +
          'decision is final: deciding twice, or on a model that needs no approval, is 409. The model is released once every approval is ' +
          'given, and one rejection keeps it unreleased for good.',
        params: IdParams,
        body: ReleaseDecisionBody,
        response: { 200: ref(ModelApprovalsSchema), ...problemResponses(...authedProblems, 403, 404, 409, 415) },
      },
    },
    async (request) => decideModelRelease(deps, principalOf(request), request.params.id, request.body),
  );
}
