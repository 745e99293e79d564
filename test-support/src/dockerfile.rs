//! The repository's Dockerfile as the tests read it: the stages and the
//! instructions of the image that runs (the last stage), with `\`
//! continuation lines joined.

use std::path::Path;

use crate::REPO;

/// One instruction: its keyword in upper case and the rest of the line.
#[derive(Clone, Debug)]
pub struct Instruction {
    pub keyword: String,
    pub arguments: String,
}

/// The parsed Dockerfile.
pub struct Dockerfile {
    pub instructions: Vec<Instruction>,
}

impl Dockerfile {
    pub fn load() -> Dockerfile {
        let text = std::fs::read_to_string(Path::new(REPO).join("Dockerfile"))
            .expect("a Dockerfile at the repository's top");
        let mut instructions = Vec::new();
        let mut pending = String::new();
        for line in text.lines() {
            let line = line.trim();
            if pending.is_empty() && (line.is_empty() || line.starts_with('#')) {
                continue;
            }
            match line.strip_suffix('\\') {
                Some(part) => {
                    pending.push_str(part);
                    pending.push(' ');
                }
                None => {
                    pending.push_str(line);
                    let (keyword, arguments) = pending
                        .split_once(char::is_whitespace)
                        .unwrap_or((&pending, ""));
                    instructions.push(Instruction {
                        keyword: keyword.to_ascii_uppercase(),
                        arguments: arguments.trim().to_string(),
                    });
                    pending.clear();
                }
            }
        }
        Dockerfile { instructions }
    }

    /// The base image of every stage, in order.
    pub fn stages(&self) -> Vec<String> {
        self.instructions
            .iter()
            .filter(|i| i.keyword == "FROM")
            .map(|i| i.arguments.clone())
            .collect()
    }

    /// The arguments of every `keyword` instruction in the last stage (the
    /// image that runs).
    pub fn runtime(&self, keyword: &str) -> Vec<String> {
        let last_from = self
            .instructions
            .iter()
            .rposition(|i| i.keyword == "FROM")
            .expect("a FROM instruction");
        self.instructions[last_from..]
            .iter()
            .filter(|i| i.keyword == keyword)
            .map(|i| i.arguments.clone())
            .collect()
    }

    /// Every `RUN` of every stage, joined, for looking up a command.
    pub fn all_runs(&self) -> String {
        self.instructions
            .iter()
            .filter(|i| i.keyword == "RUN")
            .map(|i| i.arguments.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }
}
