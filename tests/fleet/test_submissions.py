"""Submissions end to end: real Redis, real worker processes, real Docker."""

from __future__ import annotations

import pytest

from worker.client import Client
from worker.contract import Verdict

pytestmark = [pytest.mark.docker, pytest.mark.redis]

SUM = {
    "python": "a, b = map(int, input().split())\nprint(a + b)\n",
    "c": '#include <stdio.h>\nint main(){long a,b;scanf("%ld %ld",&a,&b);printf("%ld\\n",a+b);}\n',
    "cpp": "#include <iostream>\nint main(){long a,b;std::cin>>a>>b;std::cout<<a+b<<'\\n';}\n",
    "javascript": "const [a, b] = require('fs').readFileSync(0, 'utf8').trim().split(/\\s+/).map(Number);\n"
    "console.log(a + b);\n",
}
TESTS = [
    {"id": "small", "stdin": "1 2\n", "expected_stdout": "3\n"},
    {"id": "wrong", "stdin": "2 2\n", "expected_stdout": "5\n"},
    {"id": "big", "stdin": "1000000 2000000", "expected_stdout": "3000000"},
]


@pytest.mark.parametrize("lang", list(SUM))
def test_each_language_judges_several_tests_in_order(workers, client: Client, lang: str) -> None:
    workers("solo")
    sub = {"id": f"sub-{lang}", "language": lang, "source": SUM[lang], "tests": TESTS}
    result = client.submit(sub).result(timeout=120)
    assert result.submission_id == f"sub-{lang}"
    assert [t.id for t in result.tests] == ["small", "wrong", "big"]
    assert [t.verdict for t in result.tests] == [Verdict.AC, Verdict.WA, Verdict.AC]
    assert (result.verdict, result.passed, result.total) == (Verdict.WA, 2, 3)
    assert result.compile is not None and result.compile.exit_code == 0
