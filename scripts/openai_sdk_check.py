"""Calls a running tunelab with the official openai Python SDK (pip install openai).

Usage: OPENAI_BASE_URL=http://localhost:8080/v1 OPENAI_API_KEY=tl_... python scripts/openai_sdk_check.py MODEL
Checks models.list/retrieve, chat and completions whole and streamed (temperature 0: the
streamed text equals the whole answer), and that bad input raises the SDK's typed errors.
Then files and fine-tuning jobs: files.create/retrieve/content/list/delete, a job trained to
success whose fine_tuned_model answers chat at once, another cancelled while queued,
jobs.list paged, list_events and checkpoints.list.
"""
import sys
import time

import openai

model = sys.argv[1]
client = openai.OpenAI()
ids = [m.id for m in client.models.list()]
assert model in ids, ids
assert client.models.retrieve(model).id == model

msgs = [{"role": "user", "content": "What is the capital of France?"}]
whole = client.chat.completions.create(model=model, messages=msgs, temperature=0, max_tokens=40)
text = whole.choices[0].message.content
streamed = "".join(
    c.choices[0].delta.content or ""
    for c in client.chat.completions.create(model=model, messages=msgs, temperature=0, max_tokens=40, stream=True)
    if c.choices
)
assert streamed == text, (streamed, text)
assert whole.usage.completion_tokens == len(text.encode()), whole.usage

comp = client.completions.create(model=model, prompt="Hello", temperature=0, max_tokens=20, stop=["\n"])
ctext = "".join(c.choices[0].text for c in client.completions.create(model=model, prompt="Hello", temperature=0, max_tokens=20, stop=["\n"], stream=True))
assert ctext == comp.choices[0].text, (ctext, comp.choices[0].text)

try:
    client.chat.completions.create(model="tl-0-0", messages=msgs)
    raise AssertionError("unknown model answered")
except openai.NotFoundError as e:
    assert e.code == "model_not_found", e
try:
    client.chat.completions.create(model=model, messages=msgs, n=2)
    raise AssertionError("n=2 answered")
except openai.BadRequestError as e:
    assert e.param == "n", e
try:
    openai.OpenAI(api_key="tl_" + "x" * 32).models.list()
    raise AssertionError("bad key answered")
except openai.AuthenticationError as e:
    assert e.code == "invalid_api_key", e

# Files: a dataset through the same validation as the Datasets page.
rows = "".join('{"prompt": "Say %d", "completion": " number %d"}\n' % (i, i) for i in range(40)).encode()
f = client.files.create(file=("sdk.jsonl", rows), purpose="fine-tune")
assert f.id.startswith("file-") and f.purpose == "fine-tune" and f.bytes == len(rows) and f.filename == "sdk.jsonl", f
assert client.files.retrieve(f.id).id == f.id
assert client.files.content(f.id).content == rows
assert f.id in [x.id for x in client.files.list(limit=1)]  # auto-paging with after=
for bad, param in [(dict(file=("bad.jsonl", b'{"prompt": "x"}\n'), purpose="fine-tune"), "file"),
                   (dict(file=("x.jsonl", rows), purpose="assistants"), "purpose")]:
    try:
        client.files.create(**bad)
        raise AssertionError("a bad upload was accepted: %r" % param)
    except openai.BadRequestError as e:
        assert e.param == param, e

# Fine-tuning jobs: one trained to success, one cancelled while queued.
job = client.fine_tuning.jobs.create(model="tunelab/byte-mlp-small", training_file=f.id, suffix="sdk", seed=7,
                                     method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 2, "batch_size": "auto"}}},
                                     metadata={"by": "python"})
assert job.status == "queued" and job.metadata == {"by": "python"} and job.method.supervised.hyperparameters.n_epochs == 2, job
other = client.fine_tuning.jobs.create(model="tunelab/byte-mlp-small", training_file=f.id, hyperparameters={"n_epochs": 1})
assert client.fine_tuning.jobs.cancel(other.id).status == "cancelled"
listed = [j.id for j in client.fine_tuning.jobs.list(limit=1)]  # auto-paging with after=
assert job.id in listed and other.id in listed, listed
try:
    client.fine_tuning.jobs.create(model="tunelab/byte-mlp-small", training_file=f.id, hyperparameters={"n_epochs": 0})
    raise AssertionError("n_epochs 0 accepted")
except openai.BadRequestError as e:
    assert e.param == "hyperparameters.n_epochs", e
try:
    client.fine_tuning.jobs.retrieve("ftjob-999999")
    raise AssertionError("an unknown job answered")
except openai.NotFoundError:
    pass
deadline = time.time() + 240
while job.status not in ("succeeded", "failed", "cancelled"):
    assert time.time() < deadline, job
    time.sleep(1)
    job = client.fine_tuning.jobs.retrieve(job.id)
assert job.status == "succeeded" and job.fine_tuned_model == "ft:tunelab/byte-mlp-small:sdk:" + job.id, job
ft = client.chat.completions.create(model=job.fine_tuned_model, messages=[{"role": "user", "content": "Say 3"}], temperature=0, max_tokens=20)
assert ft.model == job.fine_tuned_model and ft.choices[0].finish_reason in ("stop", "length"), ft
events = list(client.fine_tuning.jobs.list_events(job.id, limit=3))  # auto-paging
messages = [e.message for e in events]
assert messages[0] == "New fine-tuned model created and deployed: " + job.fine_tuned_model, messages
assert messages[-1] == "Fine-tuning job queued" and "The job has successfully completed" in messages, messages
checkpoints = client.fine_tuning.jobs.checkpoints.list(job.id).data
assert checkpoints and checkpoints[0].step_number > 0 and checkpoints[0].metrics.train_loss is not None, checkpoints
assert client.files.delete(f.id).deleted
print("openai", openai.__version__, "OK:", repr(text), repr(comp.choices[0].text), job.fine_tuned_model, repr(ft.choices[0].message.content))
