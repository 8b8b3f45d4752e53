// Prints the greatest common divisor of each line's two numbers. Two zeros have none: the
// program panics, so one test shows a runtime error verdict.
use std::io::{self, BufRead, Write};

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

fn main() {
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    for line in io::stdin().lock().lines() {
        let line = line.unwrap();
        let numbers: Vec<u64> = line.split_whitespace().map(|n| n.parse().unwrap()).collect();
        let (a, b) = (numbers[0], numbers[1]);
        assert!(a != 0 || b != 0, "gcd(0, 0) is undefined");
        writeln!(out, "{}", gcd(a, b)).unwrap();
    }
}
