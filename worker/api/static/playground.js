// The playground: a submission through POST /v1/submissions, then its events (one per
// finished test, then the result) read from GET /v1/submissions/{id}/events with fetch, which
// can send the API key as a header (EventSource cannot).
"use strict";

const SAMPLES = {
  python: "a, b = map(int, input().split())\nprint(a + b)\n",
  pypy: "a, b = map(int, input().split())\nprint(a + b)\n",
  c: '#include <stdio.h>\nint main(void) {\n    long a, b;\n    scanf("%ld %ld", &a, &b);\n    printf("%ld\\n", a + b);\n}\n',
  cpp: "#include <iostream>\nint main() {\n    long a, b;\n    std::cin >> a >> b;\n    std::cout << a + b << '\\n';\n}\n",
  java: "import java.util.Scanner;\n\npublic class Main {\n    public static void main(String[] args) {\n        Scanner in = new Scanner(System.in);\n        long a = in.nextLong(), b = in.nextLong();\n        System.out.println(a + b);\n    }\n}\n",
  javascript: 'const [a, b] = require("fs").readFileSync(0, "utf8").trim().split(/\\s+/).map(Number);\nconsole.log(a + b);\n',
  lua: 'local a, b = io.read("n", "n")\nprint(a + b)\n',
  php: '<?php\nfscanf(STDIN, "%d %d", $a, $b);\necho $a + $b, "\\n";\n',
  ruby: "a, b = gets.split.map(&:to_i)\nputs a + b\n",
  go: 'package main\n\nimport "fmt"\n\nfunc main() {\n\tvar a, b int64\n\tfmt.Scan(&a, &b)\n\tfmt.Println(a + b)\n}\n',
  rust: "use std::io::Read;\n\nfn main() {\n    let mut s = String::new();\n    std::io::stdin().read_to_string(&mut s).unwrap();\n    let n: Vec<i64> = s.split_whitespace().map(|w| w.parse().unwrap()).collect();\n    println!(\"{}\", n[0] + n[1]);\n}\n",
  csharp: "using System;\nusing System.Linq;\nclass Sum {\n    static void Main() {\n        var n = Console.ReadLine().Split(' ').Select(long.Parse).ToArray();\n        Console.WriteLine(n[0] + n[1]);\n    }\n}\n",
  pascal: "var a, b: int64;\nbegin\n  read(a, b);\n  writeln(a + b)\nend.\n",
  haskell: "main :: IO ()\nmain = do\n  [a, b] <- map read . words <$> getLine\n  print (a + b :: Integer)\n",
};
const $ = (id) => document.getElementById(id);
const keyInput = $("key");
keyInput.value = localStorage.getItem("runner-key") || "";

function headers() {
  const given = keyInput.value.trim();
  localStorage.setItem("runner-key", given);
  const sent = { "Content-Type": "application/json" };
  if (given) sent.Authorization = "Bearer " + given;
  return sent;
}

function addTest(stdin = "", expected = "") {
  const row = document.createElement("div");
  row.className = "test";
  row.innerHTML =
    '<textarea class="stdin" placeholder="stdin" spellcheck="false"></textarea>' +
    '<textarea class="expected" placeholder="expected output (empty: any)" spellcheck="false"></textarea>' +
    '<button type="button" class="remove" title="remove this test">✕</button>';
  row.querySelector(".stdin").value = stdin;
  row.querySelector(".expected").value = expected;
  row.querySelector(".remove").onclick = () => row.remove();
  $("tests").appendChild(row);
}

async function loadLanguages() {
  const response = await fetch("/v1/languages");
  const select = $("language");
  for (const lang of await response.json()) {
    const option = document.createElement("option");
    option.value = lang.name;
    option.textContent = lang.display;
    select.appendChild(option);
  }
  select.onchange = () => { $("source").value = SAMPLES[select.value] || ""; };
  select.value = "python";
  select.onchange();
}

function cell(row, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  row.appendChild(td);
}

// What the program printed: for a test without an expected output ("just run it") the
// only thing to see, and for a failing one half of the story. textContent: never markup.
function output(row, result) {
  const td = document.createElement("td");
  td.className = "output";
  const stdout = document.createElement("pre");
  stdout.className = "stdout";
  stdout.textContent = result.stdout || "";
  if (!result.stdout) stdout.classList.add("empty");
  if (result.stdout_truncated) stdout.dataset.cut = "the result keeps only the start";
  td.appendChild(stdout);
  if (result.stderr) {
    const stderr = document.createElement("pre");
    stderr.className = "stderr";
    stderr.textContent = result.stderr;
    td.appendChild(stderr);
  }
  row.appendChild(td);
}

function showTest(index, result) {
  let row = document.querySelector(`#results tr[data-index="${index}"]`);
  if (!row) return;
  row.innerHTML = "";
  cell(row, String(index));
  cell(row, result.verdict, "v-" + result.verdict);
  cell(row, String(result.cpu_time_ms), "num");
  cell(row, String(result.wall_time_ms), "num");
  cell(row, String(result.memory_kb), "num");
  cell(row, result.message || "", "message");
  output(row, result);
  row.dataset.verdict = result.verdict;
}

function showResult(result) {
  (result.tests || []).forEach((test, index) => showTest(index, test));
  const verdict = $("verdict");
  verdict.textContent = `${result.verdict} · passed ${result.passed}/${result.total}`;
  verdict.className = "verdict v-" + result.verdict;
  verdict.dataset.verdict = result.verdict;
  const output = result.compile && result.compile.output;
  $("compile-output").textContent = output ? output : "(no output)";
  if (result.error) $("status").textContent = `${result.error.code}: ${result.error.message}`;
}

function parseEvents(buffer, onEvent) {
  // server-sent events: blocks separated by a blank line, "event:" and "data:" lines
  let split;
  while ((split = buffer.indexOf("\n\n")) >= 0) {
    const block = buffer.slice(0, split);
    buffer = buffer.slice(split + 2);
    let name = "message", data = "";
    for (const line of block.split("\n")) {
      if (line.startsWith("event:")) name = line.slice(6).trim();
      else if (line.startsWith("data:")) data += line.slice(5).trim();
    }
    if (data) onEvent(name, JSON.parse(data));
  }
  return buffer;
}

async function follow(id) {
  const response = await fetch(`/v1/submissions/${id}/events`, { headers: headers() });
  if (!response.ok) throw new Error(`events: HTTP ${response.status}`);
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer = parseEvents(buffer + decoder.decode(value, { stream: true }), (name, data) => {
      if (name === "test") showTest(data.index, data.result);
      if (name === "result") showResult(data);
    });
  }
}

async function run() {
  const tests = [...document.querySelectorAll("#tests .test")].map((row) => {
    const test = { stdin: row.querySelector(".stdin").value };
    const expected = row.querySelector(".expected").value;
    if (expected) test.expected_stdout = expected;
    return test;
  });
  const body = { language: $("language").value, source: $("source").value, tests };
  const results = $("results");
  results.innerHTML = "";
  tests.forEach((_, index) => {
    const row = document.createElement("tr");
    row.dataset.index = String(index);
    cell(row, String(index));
    cell(row, "waiting", "v-waiting");
    results.appendChild(row);
  });
  $("verdict").textContent = "";
  delete $("verdict").dataset.verdict;
  $("compile-output").textContent = "(none yet)";
  $("status").textContent = "sending…";
  $("run").disabled = true;
  try {
    const response = await fetch("/v1/submissions", {
      method: "POST", headers: headers(), body: JSON.stringify(body),
    });
    const answer = await response.json();
    if (response.status === 422) { showResult(answer); return; }
    if (!response.ok) {
      $("status").textContent = `HTTP ${response.status}: ${answer.error ? answer.error.message : ""}`;
      return;
    }
    $("status").textContent = `submission ${answer.id}: judging…`;
    await follow(answer.id);
    $("status").textContent = `submission ${answer.id}: done`;
  } catch (error) {
    $("status").textContent = String(error);
  } finally {
    $("run").disabled = false;
  }
}

$("add-test").onclick = () => addTest();
$("run").onclick = run;
addTest("1 2\n", "3\n");
addTest("20 22\n", "42\n");
loadLanguages();
