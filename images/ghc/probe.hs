-- Reads two numbers and uses packages GHC ships (containers, mtl, text); its arguments are
-- its own, +RTS included: the build fails unless it prints exactly what it should.
import Control.Monad.State (evalState, get, modify)
import qualified Data.Map as M
import qualified Data.Text as T
import System.Environment (getArgs)

main :: IO ()
main = do
  [a, b] <- map read . words <$> getLine :: IO [Integer]
  args <- getArgs
  putStrLn $ unwords
    [ "probe", show (a + b), show (2 ^ (100 :: Int) :: Integer)
    , show (M.keys (M.fromList [(3 :: Int, "c"), (1, "a")]))
    , show (evalState (modify (+ 1) >> get) (41 :: Int))
    , T.unpack (T.toUpper (T.pack "ok")), show args ]
