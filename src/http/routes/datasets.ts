// /v1/datasets: upload (multipart), list, get, download and delete datasets. Every principal sees the
// catalogue (metadata); the content and deletion are the owner's alone.
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Readable } from 'node:stream';
import { Type } from 'typebox';
import { createDataset, deleteDataset, getDataset, listDatasets, openDatasetContent, stageDatasetUpload } from '../../artifacts/datasets.js';
import type { ArtifactDeps } from '../../artifacts/service.js';
import { datasetPrivacy } from '../../privacy/ledger.js';
import { principalOf } from '../plugins/auth.js';
import { receiveUpload } from '../plugins/multipart.js';
import { binaryContent, DatasetFieldsSchema, DatasetListSchema, multipartBody } from '../schemas/artifacts.js';
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
        summary: 'Upload a dataset (multipart: one file part — TorchScript, safetensors or CSV — and its privacy settings); it is checked, converted and sealed',
        response: { 201: Type.Ref('Dataset'), ...problemResponses(...authedProblems, 413, 415, 422) },
      },
      config: { multipartBody: multipartBody(DatasetFieldsSchema) },
    },
    async (request, reply) => {
      const owner = principalOf(request);
      const { fields, staged } = await receiveUpload(request, DatasetFieldsSchema, (source, before) => stageDatasetUpload(deps, source, before.format));
      const dataset = await createDataset(
        deps,
        owner,
        {
          name: fields.name,
          description: fields.description ?? '',
          allowNonPrivate: fields.allowNonPrivate ?? false,
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
        summary: 'Every dataset (metadata only), oldest first',
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
        summary: 'One dataset (metadata and what the check found)',
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
        summary: "The dataset's privacy budget: limit ε, δ, ε spent (composition of every release charged to it) and remaining, and the releases",
        params: IdParams,
        response: { 200: Type.Ref('DatasetPrivacy'), ...problemResponses(...authedProblems, 404) },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      getDataset(deps, principal, request.params.id); // 404 for what the caller may not see
      return await datasetPrivacy(deps, request.params.id, principal.id);
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
        response: { 200: binaryContent, ...problemResponses(...authedProblems, 404) },
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
}
