import pytest

from hardmine.datasets.wordnet import load_wordnet_nouns

# Real data.noun lines (WordNet 3.0 format), trimmed to a five-synset hierarchy; the header mimics the license.
DATA_NOUN = """\
  1 This software and database is being provided to you, the LICENSEE, by  
  2 Princeton University under the following license.  
00001740 03 n 01 entity 0 001 ~ 00015388 n 0000 | that which is perceived or known or inferred to have its own distinct existence (living or nonliving)  
00015388 03 n 02 animal 0 animate_being 0 003 @ 00001740 n 0000 ~ 02084071 n 0000 ~ 02121620 n 0000 | a living organism characterized by voluntary movement  
02084071 05 n 03 dog 0 domestic_dog 0 Canis_familiaris 0 001 @ 00015388 n 0000 | a member of the genus Canis; "the dog barked all night"  
02121620 05 n 02 cat 0 true_cat 0 001 @ 00015388 n 0000 | feline mammal usually having thick soft fur and no ability to roar: domestic cats; wildcats  
10023039 18 n 01 dog 1 001 @i 00015388 n 0000 | a dull unattractive unpleasant girl or woman; "she got a reputation as a frump"  
"""


@pytest.fixture
def wordnet_dir(tmp_path):
    (tmp_path / "data.noun").write_text(DATA_NOUN)
    return tmp_path


def test_parses_synsets_lemmas_glosses_and_hypernyms(wordnet_dir):
    wn = load_wordnet_nouns(wordnet_dir)
    assert len(wn) == 5 and wn.offsets.tolist() == [1740, 15388, 2084071, 2121620, 10023039]
    assert wn.lemmas[2] == ("dog", "domestic dog", "Canis familiaris")
    assert wn.glosses[2] == "a member of the genus Canis"
    assert wn.hypernyms[1] == (0,) and wn.hypernyms[4] == (1,) and wn.hypernyms[0] == ()
    assert wn.lexnames.tolist() == [3, 3, 5, 5, 18]
    assert sorted(wn.co_hyponyms(2)) == [3, 4]
    assert load_wordnet_nouns(wordnet_dir, examples=True).glosses[2].endswith('"the dog barked all night"')


def test_retrieval_task_shares_lemmas_across_synsets(wordnet_dir):
    task = load_wordnet_nouns(wordnet_dir).retrieval_task([2, 4])
    assert task.queries == ["a member of the genus Canis", "a dull unattractive unpleasant girl or woman"]
    dog = task.corpus.index("dog")
    assert dog in task.positives[0] and task.positives[1] == [dog]
    assert len(task.corpus) == len(set(task.corpus)) == 8


def test_missing_files_say_how_to_get_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get download wordnet-base && dpkg -x"):
        load_wordnet_nouns(tmp_path)


def test_malformed_line_names_file_and_line(tmp_path):
    (tmp_path / "data.noun").write_text(DATA_NOUN + "00000001 03 n zz oops | broken\n")
    with pytest.raises(ValueError, match=r"data.noun:8: not a WordNet data line"):
        load_wordnet_nouns(tmp_path)
