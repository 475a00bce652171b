import sys
sys.exit("refusing to be imported")
