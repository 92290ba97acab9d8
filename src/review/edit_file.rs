//! The file a reviewer edits a revision in: three headed sections, read back exactly
//! (a heading line must stay as it is; everything between headings is the text).

use crate::store::decisions::Texts;

const HEADINGS: [&str; 3] = ["## instruction", "## input", "## output"];

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
        if let Some(k) = HEADINGS.iter().position(|h| l.trim_end() == *h)
            && at[k].is_none()
        {
            at[k] = Some(i);
        }
    }
    let [Some(a), Some(b), Some(c)] = at else {
        return Err(
            "the edited file lost one of its headings (## instruction, ## input, ## output); nothing saved"
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
            output: "## not a heading inside\n6".into(),
        };
        assert_eq!(parse(&render("x", &t)).unwrap(), t);
        assert!(
            parse("## instruction\na\n## output\nb")
                .unwrap_err()
                .contains("headings")
        );
        assert!(parse("## output\na\n## input\n## instruction\n").is_err());
    }
}
