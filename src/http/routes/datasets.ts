// /v1/datasets: upload (multipart), list, get, download, delete datasets and replace their policy. A
// dataset is seen by its owner and the trainers its policy names (governance/authorize.ts); its content,
// policy and deletion are the owner's alone.
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Readable } from 'node:stream';
import { Type } from 'typebox';
import {
  authorizedDatasetRow,
  createDataset,
  deleteDataset,
  getDataset,
  listDatasets,
  openDatasetContent,
  setDatasetPolicy,
  stageDatasetUpload,
} from '../../artifacts/datasets.js';
import { authorize } from '../../governance/authorize.js';
import { datasetPolicyFromForm } from '../../governance/policy.js';
import { datasetTarget } from '../../governance/targets.js';
import type { ArtifactDeps } from '../../artifacts/service.js';
import { datasetPrivacy } from '../../privacy/ledger.js';
import { principalOf } from '../plugins/auth.js';
import { receiveUpload } from '../plugins/multipart.js';
import { binaryContent, DatasetFieldsSchema, DatasetListSchema, DatasetPolicyInputSchema, multipartBody } from '../schemas/artifacts.js';
import { authedProblems, IdParams, problemResponses } from '../schemas/common.js';

export default async function datasetRoutes(root: FastifyInstance, options: { artifacts: ArtifactDeps }) {
  const app = root.withTypeProvider<TypeBoxTypeProvider>();
  const deps = options.artifacts;

  app.post(
    '/v1/datasets',
    {
      schema: {
        operationId: 'createDataset',
        tags: ['datasets'],
        summary:
          'Upload a dataset (multipart: one file part — TorchScript, safetensors or CSV — its privacy settings and its policy); it is checked, converted and sealed. ' +
          'Without a policy it is private to its owner',
        response: { 201: Type.Ref('Dataset'), ...problemResponses(...authedProblems, 413, 415, 422) },
      },
      config: { multipartBody: multipartBody(DatasetFieldsSchema) },
    },
    async (request, reply) => {
      const owner = principalOf(request);
      const { fields, staged } = await receiveUpload(request, DatasetFieldsSchema, (source, before) => stageDatasetUpload(deps, source, before.format));
      let policy;
      try {
        policy = datasetPolicyFromForm(fields);
      } catch (err) {
        await staged.discard();
        throw err;
      }
      const dataset = await createDataset(
        deps,
        owner,
        {
          name: fields.name,
          description: fields.description ?? '',
          policy,
          ...(fields.format !== undefined ? { format: fields.format } : {}),
          ...(fields.privacyLimit !== undefined ? { privacyLimit: fields.privacyLimit } : {}),
          ...(fields.delta !== undefined ? { delta: fields.delta } : {}),
          ...(fields.labelColumn !== undefined ? { labelColumn: fields.labelColumn } : {}),
        },
        staged,
      );
      return reply.code(201).header('location', `/v1/datasets/${dataset.id}`).send(dataset);
    },
  );

  app.get(
    '/v1/datasets',
    {
      schema: {
        operationId: 'listDatasets',
        tags: ['datasets'],
        summary: 'The datasets the caller may see (its own, and those whose policy names it), metadata only, oldest first',
        response: { 200: DatasetListSchema, ...problemResponses(...authedProblems) },
      },
    },
    async (request) => ({ items: listDatasets(deps, principalOf(request)) }),
  );

  app.get(
    '/v1/datasets/:id',
    {
      schema: {
        operationId: 'getDataset',
        tags: ['datasets'],
        summary: 'One dataset the caller may see (metadata and what the check found)',
        params: IdParams,
        response: { 200: Type.Ref('Dataset'), ...problemResponses(...authedProblems, 404) },
      },
    },
    async (request) => getDataset(deps, principalOf(request), request.params.id),
  );

  app.get(
    '/v1/datasets/:id/privacy',
    {
      schema: {
        operationId: 'getDatasetPrivacy',
        tags: ['datasets'],
        summary:
          "The dataset's privacy budget: limit ε, δ, ε spent (composition of every release charged to it) and remaining, and the releases; " +
          'the owner also sees who caused each charge and the samples each training dropped',
        params: IdParams,
        response: { 200: Type.Ref('DatasetPrivacy'), ...problemResponses(...authedProblems, 404) },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const row = authorizedDatasetRow(deps, principal, request.params.id, 'dataset.read');
      return await datasetPrivacy(deps, row.id, authorize(principal, 'dataset.readLedgerDetails', datasetTarget(row)).allowed);
    },
  );

  app.get(
    '/v1/datasets/:id/content',
    {
      schema: {
        operationId: 'getDatasetContent',
        tags: ['datasets'],
        summary: "Download the dataset's file as uploaded (owner only)",
        params: IdParams,
        response: { 200: binaryContent, ...problemResponses(...authedProblems, 403, 404) },
      },
    },
    async (request, reply) => {
      const { dataset, content } = await openDatasetContent(deps, principalOf(request), request.params.id);
      const extension = { torchscript: 'pt', safetensors: 'safetensors', csv: 'csv' }[dataset.format];
      return reply
        .type('application/octet-stream')
        .header('content-length', String(content.sizeBytes))
        .header('content-disposition', `attachment; filename="${dataset.id}.${extension}"`)
        .header('x-content-sha256', dataset.sha256)
        .send(Readable.from(content.chunks()));
    },
  );

  app.delete(
    '/v1/datasets/:id',
    {
      schema: {
        operationId: 'deleteDataset',
        tags: ['datasets'],
        summary: 'Delete a dataset and its sealed files (owner only; 409 while a training uses it)',
        params: IdParams,
        response: { 204: Type.Null({ description: 'Deleted' }), ...problemResponses(...authedProblems, 403, 404, 409) },
      },
    },
    async (request, reply) => {
      await deleteDataset(deps, principalOf(request), request.params.id);
      return reply.code(204).send(null);
    },
  );

  app.put(
    '/v1/datasets/:id/policy',
    {
      schema: {
        operationId: 'setDatasetPolicy',
        tags: ['datasets'],
        summary:
          "Replace the dataset's policy (owner only; omitted fields take their defaults). It applies from the next request: trainings already accepted run on, and their charges stand",
        params: IdParams,
        body: Type.Ref('DatasetPolicyInput') as unknown as typeof DatasetPolicyInputSchema,
        response: { 200: Type.Ref('Dataset'), ...problemResponses(...authedProblems, 403, 404, 415, 422) },
      },
    },
    async (request) => setDatasetPolicy(deps, principalOf(request), request.params.id, request.body),
  );
}
