//! Numbers as JavaScript writes them: ECMAScript's Number::toString, which is what
//! `JSON.stringify` puts in every Lumiverse archive, from the `ryu-js` crate (the Ryū
//! algorithm laid out by ECMAScript's rules, as Boa's JavaScript engine uses it): the
//! shortest digits that read back as the same double (the nearest of them, ties to even),
//! plain decimals from 1e-7 exclusive up to 1e21 exclusive (`0.000005`, `123.5`,
//! `100000000000000000000`), exponent form outside (`5e-7`, `1.5e+21`), `-0` as `0`; NaN
//! and the infinities, which JSON has no number for, as `null`.

/// Appends `value` to `out` exactly as `JSON.stringify(value)` writes it.
pub fn write_js_number(out: &mut Vec<u8>, value: f64) {
    out.extend_from_slice(json_text(&mut ryu_js::Buffer::new(), value).as_bytes());
}

/// `value` as `JSON.stringify` writes it, as a string.
pub fn js_number(value: f64) -> String {
    json_text(&mut ryu_js::Buffer::new(), value).to_owned()
}

fn json_text(buffer: &mut ryu_js::Buffer, value: f64) -> &str {
    if value.is_finite() {
        buffer.format_finite(value)
    } else {
        "null"
    }
}

#[cfg(test)]
// Exact literals are the point: they are the doubles whose text is tested.
#[allow(clippy::unwrap_used, clippy::excessive_precision)]
mod tests {
    use super::*;

    /// Answers of `JSON.stringify` in Node 20, written down.
    #[test]
    fn numbers_as_javascript_writes_them() {
        let cases: &[(f64, &str)] = &[
            (0.0, "0"),
            (-0.0, "0"),
            (1.0, "1"),
            (-3.0, "-3"),
            (0.5, "0.5"),
            (0.1 + 0.2, "0.30000000000000004"),
            (0.000005, "0.000005"),
            (0.000001, "0.000001"),
            (0.0000001, "1e-7"),
            (5e-7, "5e-7"),
            (1.5e-7, "1.5e-7"),
            (123.456, "123.456"),
            (1e20, "100000000000000000000"),
            (1e21, "1e+21"),
            (1.5e21, "1.5e+21"),
            (123456789012345680000.0, "123456789012345680000"),
            (-1e-7, "-1e-7"),
            (f64::MAX, "1.7976931348623157e+308"),
            (f64::MIN_POSITIVE, "2.2250738585072014e-308"),
            (5e-324, "5e-324"),
            (9007199254740993.0, "9007199254740992"),
            (0.1, "0.1"),
            (1.0 / 3.0, "0.3333333333333333"),
            (100.0, "100"),
            (0.0000015, "0.0000015"),
            // Two shortest candidates: the one nearer the exact value, ties to even.
            (2.9802322387695312e-8, "2.9802322387695312e-8"),
            (1000000000000000.25, "1000000000000000.2"),
            (-167581363823776.125, "-167581363823776.12"),
            (f64::NAN, "null"),
            (f64::INFINITY, "null"),
            (f64::NEG_INFINITY, "null"),
        ];
        for &(value, expected) in cases {
            assert_eq!(js_number(value), expected, "{value:e}");
        }
    }

    /// Every double of a large set (edge cases, powers of ten at the layout boundaries, and
    /// pseudo-random bit patterns) written here and by `node`'s `JSON.stringify`, compared.
    /// Without `node` this fails rather than passing unchecked (`scripts/setup --test`
    /// installs Debian's `nodejs` when no `node` is on PATH).
    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    #[allow(clippy::panic)]
    fn node_writes_the_same_text_for_every_double() {
        use std::process::{Command, Stdio};
        let mut values: Vec<f64> =
            vec![0.0, -0.0, f64::MAX, f64::MIN, f64::MIN_POSITIVE, 5e-324, -5e-324, f64::EPSILON];
        for exponent in -30..=30 {
            let power = 10f64.powi(exponent);
            for factor in [1.0, 1.5, 9.999999999999998, 1.0000000000000002, 0.9999999999999999] {
                values.push(power * factor);
                values.push(-power * factor);
            }
        }
        for exponent in -1074..=1023 {
            values.push(2f64.powi(exponent));
        }
        // xorshift64*: reproducible bit patterns over every exponent.
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        while values.len() < 200_000 {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let bits = state.wrapping_mul(0x2545_F491_4F6C_DD1D);
            let value = f64::from_bits(bits);
            if value.is_finite() {
                values.push(value);
            }
        }
        let script = "let s='';process.stdin.on('data',d=>s+=d);process.stdin.on('end',()=>{\
            const out=s.trim().split('\\n').map(h=>{const b=Buffer.from(h,'hex');return JSON.stringify(b.readDoubleBE(0));});\
            process.stdout.write(out.join('\\n'));});";
        let child = Command::new("node").args(["-e", script]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn();
        let mut child = child.unwrap_or_else(|error| {
            panic!("`node` did not start ({error}): this test needs Node.js (scripts/setup --test installs it)")
        });
        let input: String = values.iter().map(|v| format!("{:016x}\n", v.to_bits())).collect();
        let mut stdin = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, input.as_bytes()));
        let output = child.wait_with_output().unwrap();
        writer.join().unwrap().unwrap();
        assert!(output.status.success(), "node failed");
        let expected = String::from_utf8(output.stdout).unwrap();
        let expected: Vec<&str> = expected.split('\n').collect();
        assert_eq!(expected.len(), values.len());
        let mismatches: Vec<String> = values
            .iter()
            .zip(&expected)
            .filter(|(value, node)| js_number(**value) != **node)
            .take(10)
            .map(|(value, node)| format!("{:016x}: ours {} node {node}", value.to_bits(), js_number(*value)))
            .collect();
        assert!(mismatches.is_empty(), "{mismatches:#?}");
    }
}
