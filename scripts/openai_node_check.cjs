// Calls a running tunelab with the official openai Node SDK (npm install openai).
//
// Usage: OPENAI_BASE_URL=http://localhost:8080/v1 OPENAI_API_KEY=tl_... NODE_PATH=<dir>/node_modules node scripts/openai_node_check.cjs
// (scripts/openai-node-env.sh prints <dir>.) Checks files.create (file first in the form, as
// the SDK sends the body's keys in order), fineTuning.jobs create/retrieve/list (auto-paged
// by after)/cancel/listEvents, jobs.checkpoints.list, the typed errors, and a streamed chat
// completion on a base model that joins to the whole answer.
'use strict';
const assert = require('node:assert/strict');
const OpenAI = require('openai');
const { toFile } = OpenAI;

async function main() {
  const client = new OpenAI();
  const rows = Array.from({ length: 12 }, (_, i) => JSON.stringify({ prompt: `Say ${i}`, completion: ` number ${i}` }) + '\n').join('');
  const file = await client.files.create({ file: await toFile(Buffer.from(rows), 'node.jsonl'), purpose: 'fine-tune' });
  assert.match(file.id, /^file-\d+$/);
  assert.equal(file.filename, 'node.jsonl');
  assert.equal(file.bytes, Buffer.byteLength(rows));
  assert.equal((await client.files.retrieve(file.id)).id, file.id);
  assert.equal(await (await client.files.content(file.id)).text(), rows);
  await assert.rejects(
    client.files.create({ file: await toFile(Buffer.from(rows), 'x.jsonl'), purpose: 'assistants' }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'purpose',
  );
  await assert.rejects(
    client.files.create({ file: await toFile(Buffer.from('{"prompt": "x"}\n'), 'bad.jsonl'), purpose: 'fine-tune' }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'file' && /line 1/.test(e.message),
  );

  const job = await client.fineTuning.jobs.create({
    model: 'tunelab/byte-mlp-small',
    training_file: file.id,
    suffix: 'node',
    seed: 3,
    method: { type: 'supervised', supervised: { hyperparameters: { n_epochs: 1, learning_rate_multiplier: 'auto' } } },
    metadata: { by: 'node' },
  });
  assert.equal(job.object, 'fine_tuning.job');
  assert.deepEqual(job.metadata, { by: 'node' });
  assert.equal(job.seed, 3);
  const got = await client.fineTuning.jobs.retrieve(job.id);
  assert.equal(got.training_file, file.id);
  const ids = [];
  for await (const j of client.fineTuning.jobs.list({ limit: 1 })) ids.push(j.id);
  assert.ok(ids.includes(job.id), ids.join());
  const cancelled = await client.fineTuning.jobs.cancel(job.id);
  assert.equal(cancelled.status, 'cancelled');
  const events = [];
  for await (const e of client.fineTuning.jobs.listEvents(job.id, { limit: 1 })) events.push(e);
  assert.equal(events[events.length - 1].message, 'Fine-tuning job queued');
  assert.ok(events.every((e) => e.object === 'fine_tuning.job.event'));
  const checkpoints = await client.fineTuning.jobs.checkpoints.list(job.id);
  assert.ok(Array.isArray(checkpoints.data));
  await assert.rejects(
    client.fineTuning.jobs.create({ model: 'tunelab/byte-mlp-small', training_file: file.id, hyperparameters: { batch_size: 0 } }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'hyperparameters.batch_size',
  );
  await assert.rejects(client.fineTuning.jobs.retrieve('ftjob-999999'), (e) => e instanceof OpenAI.NotFoundError);

  const msgs = [{ role: 'user', content: 'Hello' }];
  const whole = await client.chat.completions.create({ model: 'tunelab/byte-mlp-small', messages: msgs, temperature: 0, max_tokens: 20 });
  let streamed = '';
  let finish = null;
  const stream = await client.chat.completions.create({ model: 'tunelab/byte-mlp-small', messages: msgs, temperature: 0, max_tokens: 20, stream: true });
  for await (const chunk of stream) {
    if (chunk.choices.length) {
      streamed += chunk.choices[0].delta.content ?? '';
      finish = chunk.choices[0].finish_reason ?? finish;
    }
  }
  assert.equal(streamed, whole.choices[0].message.content);
  assert.ok(finish === 'stop' || finish === 'length', String(finish));
  const deleted = await client.files.delete(file.id);
  assert.equal(deleted.deleted, true);
  console.log('openai-node', require('openai/version').VERSION, 'OK', job.id, JSON.stringify(streamed));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
