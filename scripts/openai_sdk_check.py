"""Calls a running tunelab with the official openai Python SDK (pip install openai).

Usage: OPENAI_BASE_URL=http://localhost:8080/v1 OPENAI_API_KEY=tl_... python scripts/openai_sdk_check.py MODEL
Checks models.list/retrieve, chat and completions whole and streamed (temperature 0: the
streamed text equals the whole answer), and that bad input raises the SDK's typed errors.
"""
import sys

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
print("openai", openai.__version__, "OK:", repr(text), repr(comp.choices[0].text))
