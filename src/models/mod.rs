//! `models` layer: ONNX Runtime sessions and tokenizers. `runtime` loads the library
//! and picks the device, `model_dir` reads an exported model directory and checks its
//! inputs and outputs, and three roles use it: `embedder` (sentence embeddings),
//! `causal` (span perplexities and IFD, locally or through a server's logprobs) and
//! `classifier` (NLI label probabilities).

pub mod causal;
pub mod classifier;
pub mod embedder;
pub mod model_dir;
pub mod runtime;
