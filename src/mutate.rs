//! Tests only: seeded mutations of valid inputs, for the codecs' never-panic tests (the packet
//! codec's and the polling payload decoder's). Touches nothing else.

/// A xorshift generator and the characters edits may insert.
pub(crate) struct Mutator {
    state: u64,
    alphabet: Vec<char>,
}

impl Mutator {
    pub(crate) fn new(seed: u64, alphabet: &str) -> Mutator {
        Mutator {
            state: seed,
            alphabet: alphabet.chars().collect(),
        }
    }

    fn next(&mut self) -> u64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state
    }

    /// Every prefix of `valid` (a cut at each character), then `count` copies of it with one
    /// to four random edits each: a character replaced, removed or inserted.
    pub(crate) fn inputs(&mut self, valid: &str, count: usize) -> Vec<String> {
        let chars: Vec<char> = valid.chars().collect();
        let mut inputs: Vec<String> = (0..=chars.len())
            .map(|n| chars[..n].iter().collect())
            .collect();
        for _ in 0..count {
            let mut c = chars.clone();
            for _ in 0..1 + self.next() % 4 {
                let at = (self.next() as usize) % (c.len() + 1);
                let pick = (self.next() as usize) % self.alphabet.len();
                let ch = self.alphabet[pick];
                match self.next() % 3 {
                    0 if at < c.len() => c[at] = ch,
                    1 if at < c.len() => drop(c.remove(at)),
                    _ => c.insert(at, ch),
                }
            }
            inputs.push(c.into_iter().collect());
        }
        inputs
    }
}
