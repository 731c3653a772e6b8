# Seed tutorial: 000, "Hugging Face", section V "Building Interactive Demos with Gradio" (and seed 001's
# Exercise Task 1, "Host an interactive NLP app online": Spaces).
#
# The tutorial describes the demo without code: "with just a few lines of code, you can build interactive
# demos that allow users to input text and visualize model predictions in real-time", hosted on Spaces.
# This is Gradio's own quickstart over a pipeline, with the import changed (`transformers` -> `cove`).
# Cove's additions: `cove.demo.interface(classifier)` builds the same app in one line, and to host it as a
# space of your hub: `cove demo cove/minilm-sentiment --share-on-hub me/sentiment-demo`.
#
#   python examples/13_gradio_demo.py                    # serves http://127.0.0.1:7860/
import gradio as gr

from cove import pipeline

classifier = pipeline("sentiment-analysis")


def predict(text):
    # every label with its score: gr.Label draws them as bars, the best first
    return {result["label"]: result["score"] for result in classifier(text, top_k=None)}


demo = gr.Interface(
    fn=predict,
    inputs=gr.Textbox(label="Text", placeholder="Type a sentence"),
    outputs=gr.Label(label="Sentiment"),
    examples=["I love Hugging Face!", "This movie was a waste of time."],
    title="Sentiment analysis",
)
# the same app in one line: demo = cove.demo.interface(classifier)

if __name__ == "__main__":
    demo.launch()  # GRADIO_SERVER_NAME / GRADIO_SERVER_PORT choose where (default 127.0.0.1:7860)
