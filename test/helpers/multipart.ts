// Builds multipart/form-data bodies for app.inject() with the platform's FormData, as a browser or
// curl -F would send them.

export interface FormFile {
  /** Part name; the server accepts any. */
  field?: string;
  filename?: string;
  content: Uint8Array | string;
}

export async function multipartForm(
  fields: Record<string, string>,
  files: FormFile[],
): Promise<{ payload: Buffer; headers: Record<string, string> }> {
  const form = new FormData();
  for (const [name, value] of Object.entries(fields)) form.append(name, value);
  for (const file of files) {
    const bytes = typeof file.content === 'string' ? Buffer.from(file.content) : file.content;
    form.append(file.field ?? 'file', new Blob([bytes], { type: 'application/octet-stream' }), file.filename ?? 'upload.bin');
  }
  const response = new Response(form);
  return { payload: Buffer.from(await response.arrayBuffer()), headers: { 'content-type': response.headers.get('content-type')! } };
}
