//! Synthetic instruction datasets for benchmarks: `gleaner-gen --rows 1000000 -o big.jsonl`.
//!
//! Lengths follow log-normal distributions fitted by eye to Alpaca/Dolly-style data
//! (instruction median ~70 chars, 40% of rows with an input, response median ~450
//! chars with a long tail), so parsing and rendering costs look like real data.
//! Deterministic for a given seed.

use std::io::{BufWriter, Write};
use std::path::PathBuf;

use clap::Parser;

#[derive(Parser)]
#[command(about = "Write a synthetic instruction dataset (JSONL) for benchmarks")]
struct Args {
    /// Number of rows
    #[arg(long, default_value_t = 1_000_000)]
    rows: usize,
    /// Output file (.jsonl)
    #[arg(short, long)]
    output: PathBuf,
    /// alpaca or messages
    #[arg(long, default_value = "alpaca")]
    format: String,
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let u1 = self.unit().max(1e-12);
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
    fn lognormal(&mut self, median: f64, sigma: f64, max: f64) -> usize {
        (median * (sigma * self.normal()).exp()).clamp(1.0, max) as usize
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

const WORDS: &[&str] = &[
    "the",
    "model",
    "data",
    "answer",
    "question",
    "explain",
    "function",
    "value",
    "list",
    "because",
    "example",
    "result",
    "first",
    "then",
    "which",
    "should",
    "between",
    "using",
    "process",
    "system",
    "number",
    "people",
    "important",
    "different",
    "would",
    "about",
    "write",
    "describe",
    "summary",
    "code",
    "python",
    "return",
    "error",
    "time",
    "water",
    "history",
    "energy",
    "market",
    "language",
    "learning",
    "training",
    "quality",
    "simple",
    "consider",
    "following",
    "steps",
    "however",
    "therefore",
    "approach",
    "analysis",
];
const VERBS: &[&str] = &[
    "Explain",
    "Describe",
    "Write",
    "Summarize",
    "List",
    "Compare",
    "Translate",
    "Classify",
    "Generate",
    "Rewrite",
];
const CATEGORIES: &[&str] = &[
    "open_qa",
    "closed_qa",
    "brainstorming",
    "classification",
    "summarization",
    "information_extraction",
    "creative_writing",
    "general_qa",
    "coding",
];

fn text(rng: &mut Rng, chars: usize, out: &mut String) {
    let start = out.len();
    let mut sentence_words = 0;
    while out.len() - start < chars {
        let w = rng.pick(WORDS);
        if sentence_words == 0 {
            let mut c = w.chars();
            if let Some(f) = c.next() {
                out.extend(f.to_uppercase());
                out.push_str(c.as_str());
            }
        } else {
            out.push_str(w);
        }
        sentence_words += 1;
        if sentence_words > 6 && rng.unit() < 0.15 {
            out.push('.');
            sentence_words = 0;
            if rng.unit() < 0.1 {
                out.push_str("\\n\\n");
                continue;
            }
        }
        out.push(' ');
    }
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let mut rng = Rng(args.seed);
    let file = std::fs::File::create(&args.output)?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let mut instruction = String::new();
    let mut input = String::new();
    let mut output = String::new();
    for i in 0..args.rows {
        instruction.clear();
        input.clear();
        output.clear();
        instruction.push_str(rng.pick(VERBS));
        instruction.push(' ');
        let n = rng.lognormal(70.0, 0.6, 1_500.0);
        text(&mut rng, n, &mut instruction);
        if rng.unit() < 0.4 {
            let n = rng.lognormal(100.0, 0.9, 6_000.0);
            text(&mut rng, n, &mut input);
        }
        let n = rng.lognormal(300.0, 0.9, 12_000.0);
        text(&mut rng, n, &mut output);
        let category = rng.pick(CATEGORIES);
        match args.format.as_str() {
            "messages" => {
                let user = if input.is_empty() {
                    instruction.clone()
                } else {
                    format!("{instruction}\\n{input}")
                };
                writeln!(
                    w,
                    "{{\"id\":\"gen-{i}\",\"category\":\"{category}\",\"messages\":[{{\"role\":\"user\",\"content\":\"{user}\"}},{{\"role\":\"assistant\",\"content\":\"{output}\"}}]}}"
                )?;
            }
            _ => writeln!(
                w,
                "{{\"id\":\"gen-{i}\",\"instruction\":\"{instruction}\",\"input\":\"{input}\",\"output\":\"{output}\",\"category\":\"{category}\"}}"
            )?,
        }
    }
    w.flush()
}
