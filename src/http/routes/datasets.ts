// /v1/datasets: upload (multipart), list, get, download, delete datasets and replace their policy. A
// dataset is seen by its owner and the trainers its policy names (governance/authorize.ts); its content,
// policy and deletion are the owner's alone.

import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
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
import type { ArtifactDeps } from '../../artifacts/service.js';
import { authorize } from '../../governance/authorize.js';
import { datasetPolicyFromForm } from '../../governance/policy.js';
import { datasetTarget } from '../../governance/targets.js';
import { datasetPrivacy } from '../../privacy/ledger.js';
import { DatasetFieldsSchema, DatasetListSchema, DatasetSchema } from '../../schemas/artifacts.js';
import { ref } from '../../schemas/common.js';
import { DatasetPolicyInputSchema } from '../../schemas/policies.js';
import { DatasetPrivacySchema } from '../../schemas/trainings.js';
import { sendContent } from '../content.js';
import { principalOf } from '../plugins/auth.js';
import { receiveUpload } from '../plugins/multipart.js';
import { authedProblems, IdParams, problemResponses } from '../schemas/common.js';
import { binaryContent, multipartBody } from '../schemas/uploads.js';

export default async function datasetRoutes(root: FastifyInstance, options: { artifacts: ArtifactDeps }) {
  const app = root.withTypeProvider<TypeBoxTypeProvider>();
  const deps = options.artifacts;

  app.post(
    '/v1/datasets',
    {
      schema: {
        operationId: 'createDataset',
        tags: ['datasets'],
        summary: 'Upload a dataset',
        description:
          'Uploads a dataset as multipart/form-data: exactly one file part (TorchScript, safetensors or CSV), a name, its privacy limit ' +
          'ε and δ, and an optional policy (DatasetPolicyInput as JSON). The file is checked, converted to canonical tensors and sealed ' +
          'before the 201; a 422 says why a file was refused. Without a policy the dataset is private to its owner.',
        response: { 201: ref(DatasetSchema), ...problemResponses(...authedProblems, 413, 415, 422) },
      },
      config: { multipartBody: multipartBody(DatasetFieldsSchema) },
    },
    async (request, reply) => {
      const owner = principalOf(request);
      const { fields, staged } = await receiveUpload(request, DatasetFieldsSchema, (source, before) =>
        stageDatasetUpload(deps, source, before.format),
      );
      let policy: ReturnType<typeof datasetPolicyFromForm>;
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
        summary: 'List datasets',
        description:
          'The datasets the caller may see, oldest first: its own and those whose policy names it as a trainer (or everyone). Metadata ' +
          'and public shapes only; only the owner may download the data.',
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
        summary: 'Get a dataset',
        description:
          "One dataset the caller may see: metadata, the public shapes and dtypes of its tensors, and its policy. The policy's trainers " +
          "and the label classes are in the owner's view only; a dataset the caller may not see is 404.",
        params: IdParams,
        response: { 200: ref(DatasetSchema), ...problemResponses(...authedProblems, 404) },
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
        summary: "Get a dataset's privacy budget",
        description:
          "The dataset's privacy ledger: its limit ε and δ, the ε spent (every release charged to it, composed under the tighter of PLD " +
          'and RDP) and remaining, and each charge. The owner also sees who caused each charge and how many of its samples each training ' +
          'dropped.',
        params: IdParams,
        response: { 200: ref(DatasetPrivacySchema), ...problemResponses(...authedProblems, 404) },
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
        summary: 'Download a dataset file',
        description:
          "Streams the dataset's file as uploaded, decrypted as it streams, with its SHA-256 in `x-content-sha256`. Owner only: trainers " +
          'the policy names get 403.',
        params: IdParams,
        response: { 200: binaryContent, ...problemResponses(...authedProblems, 403, 404) },
      },
    },
    async (request, reply) => {
      const { dataset, content } = await openDatasetContent(deps, principalOf(request), request.params.id);
      const extension = { torchscript: 'pt', safetensors: 'safetensors', csv: 'csv' }[dataset.format];
      // The owner's view (the only one that downloads) carries the file's hash.
      return sendContent(reply, { name: `${dataset.id}.${extension}`, sha256: dataset.sha256! }, content);
    },
  );

  app.delete(
    '/v1/datasets/:id',
    {
      schema: {
        operationId: 'deleteDataset',
        tags: ['datasets'],
        summary: 'Delete a dataset',
        description:
          'Deletes the dataset and its sealed files. Owner only (403 for others who see it); 409 while a queued or running training uses ' +
          'it.',
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
        summary: "Replace a dataset's policy",
        description:
          "Replaces the dataset's policy with the one given; omitted fields take their defaults. Owner only. It applies from the next " +
          'request: trainings already accepted run on, and their charges stand.',
        params: IdParams,
        body: ref(DatasetPolicyInputSchema),
        response: { 200: ref(DatasetSchema), ...problemResponses(...authedProblems, 403, 404, 415, 422) },
      },
    },
    async (request) => setDatasetPolicy(deps, principalOf(request), request.params.id, request.body),
  );
}
