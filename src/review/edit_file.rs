//! The file a reviewer edits a revision in: three headed sections, read back exactly
//! (a heading line must stay as it is; everything between headings is the text).

use crate::store::decisions::Texts;

// Unusual on purpose: a heading line inside a sample's own text would be ambiguous.
const HEADINGS: [&str; 3] = [
    "=== gleaner: instruction ===",
    "=== gleaner: input ===",
    "=== gleaner: output ===",
];

pub fn render(id: &str, t: &Texts) -> String {
    format!(
        "# Revision of item {id}. Edit the text under each heading; keep the three headings.\n\
         # Lines before the first heading are ignored. Save and quit to keep the edit.\n\
         {}\n{}\n{}\n{}\n{}\n{}\n",
        HEADINGS[0], t.instruction, HEADINGS[1], t.input, HEADINGS[2], t.output
    )
}

pub fn parse(text: &str) -> Result<Texts, String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut at = [None; 3];
    for (i, l) in lines.iter().enumerate() {
        if let Some(k) = HEADINGS.iter().position(|h| l.trim_end() == *h) {
            if at[k].is_some() {
                return Err(format!(
                    "the line `{}` appears twice; nothing saved",
                    HEADINGS[k]
                ));
            }
            at[k] = Some(i);
        }
    }
    let [Some(a), Some(b), Some(c)] = at else {
        return Err(
            "the edited file lost one of its three `=== gleaner: … ===` headings; nothing saved"
                .into(),
        );
    };
    if !(a < b && b < c) {
        return Err("the headings are out of order; nothing saved".into());
    }
    let section = |from: usize, to: usize| lines[from + 1..to].join("\n").trim_end().to_string();
    Ok(Texts {
        instruction: section(a, b),
        input: section(b, c),
        output: section(c, lines.len()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_lost_headings() {
        let t = Texts {
            instruction: "Sum the list.\n\nShow steps.".into(),
            input: String::new(),
            output: "## input\n6".into(),
        };
        assert_eq!(parse(&render("x", &t)).unwrap(), t);
        let h = |k: usize| HEADINGS[k];
        let lost = format!("{}\na\n{}\nb", h(0), h(2));
        assert!(parse(&lost).unwrap_err().contains("headings"));
        assert!(parse(&format!("{}\na\n{}\n{}\n", h(2), h(1), h(0))).is_err());
        let twice = format!("{}\n{}\n{}\n{}\nx", h(0), h(1), h(1), h(2));
        assert!(parse(&twice).unwrap_err().contains("twice"));
    }
}
