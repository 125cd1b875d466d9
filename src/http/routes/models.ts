// /v1/models: upload (multipart), list, get, download and delete TorchScript models. A model is
// visible to its owner only; everyone else gets 404.
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Readable } from 'node:stream';
import { Type } from 'typebox';
import { createModel, deleteModel, getModel, listModels, openModelContent } from '../../artifacts/models.js';
import { stageUpload, type ArtifactDeps } from '../../artifacts/service.js';
import { principalOf } from '../plugins/auth.js';
import { receiveUpload } from '../plugins/multipart.js';
import { binaryContent, ModelFieldsSchema, ModelListSchema, multipartBody } from '../schemas/artifacts.js';
import { authedProblems, IdParams, problemResponses } from '../schemas/common.js';

export default async function modelRoutes(root: FastifyInstance, options: { artifacts: ArtifactDeps }) {
  const app = root.withTypeProvider<TypeBoxTypeProvider>();
  const deps = options.artifacts;

  app.post(
    '/v1/models',
    {
      schema: {
        operationId: 'createModel',
        tags: ['models'],
        summary: 'Upload a TorchScript model (multipart: one file part, name, description); it is checked and sealed',
        response: { 201: Type.Ref('Model'), ...problemResponses(...authedProblems, 413, 415, 422) },
      },
      config: { multipartBody: multipartBody(ModelFieldsSchema) },
    },
    async (request, reply) => {
      const owner = principalOf(request);
      const { fields, staged } = await receiveUpload(request, ModelFieldsSchema, (source) => stageUpload(deps, 'model', source));
      const model = await createModel(deps, owner, { name: fields.name, description: fields.description ?? '' }, staged);
      return reply.code(201).header('location', `/v1/models/${model.id}`).send(model);
    },
  );

  app.get(
    '/v1/models',
    {
      schema: {
        operationId: 'listModels',
        tags: ['models'],
        summary: "The caller's models, oldest first",
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
        summary: "One of the caller's models (metadata and what the check found)",
        params: IdParams,
        response: { 200: Type.Ref('Model'), ...problemResponses(...authedProblems, 404) },
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
        summary: 'Download the TorchScript file, byte-identical to the upload (owner only)',
        params: IdParams,
        response: { 200: binaryContent, ...problemResponses(...authedProblems, 404) },
      },
    },
    async (request, reply) => {
      const { model, content } = await openModelContent(deps, principalOf(request), request.params.id);
      return reply
        .type('application/octet-stream')
        .header('content-length', String(content.sizeBytes))
        .header('content-disposition', `attachment; filename="${model.id}.pt"`)
        .header('x-content-sha256', model.sha256)
        .send(Readable.from(content.chunks()));
    },
  );

  app.delete(
    '/v1/models/:id',
    {
      schema: {
        operationId: 'deleteModel',
        tags: ['models'],
        summary: 'Delete a model and its sealed file (owner only; 409 while a training uses it)',
        params: IdParams,
        response: { 204: Type.Null({ description: 'Deleted' }), ...problemResponses(...authedProblems, 404, 409) },
      },
    },
    async (request, reply) => {
      await deleteModel(deps, principalOf(request), request.params.id);
      return reply.code(204).send(null);
    },
  );
}
