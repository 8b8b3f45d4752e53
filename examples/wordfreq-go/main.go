// Prints how often each word of its input occurs, most frequent first (ties in alphabetical
// order). An empty input is refused with a panic, so one test shows a runtime error verdict.
package main

import (
	"bufio"
	"fmt"
	"os"
	"sort"
)

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Split(bufio.ScanWords)
	counts := map[string]int{}
	for in.Scan() {
		counts[in.Text()]++
	}
	if len(counts) == 0 {
		panic("no words")
	}
	words := make([]string, 0, len(counts))
	for word := range counts {
		words = append(words, word)
	}
	sort.Slice(words, func(i, j int) bool {
		if counts[words[i]] != counts[words[j]] {
			return counts[words[i]] > counts[words[j]]
		}
		return words[i] < words[j]
	})
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	for _, word := range words {
		fmt.Fprintln(out, word, counts[word])
	}
}
