// Counts words per line and prints the counts; crashes on a line that says "boom".
const lines = require("fs").readFileSync(0, "utf8").split("\n").filter((l) => l.length);
for (const line of lines) {
  if (line.trim() === "boom") throw new Error("boom");
  console.log(line.trim().split(/\s+/).length);
}
