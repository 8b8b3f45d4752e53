-- Prints the n-th Fibonacci number for each n read, exactly (Integer), from a lazy list. A
-- negative n is refused with `error`, so one test shows a runtime error verdict.
fibs :: [Integer]
fibs = 0 : 1 : zipWith (+) fibs (tail fibs)

fib :: Int -> Integer
fib n
  | n < 0 = error ("no Fibonacci number at " ++ show n)
  | otherwise = fibs !! n

main :: IO ()
main = interact (unlines . map (show . fib . read) . words)
