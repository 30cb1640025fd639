"""DCASE 2019 Task 1A: TAU Urban Acoustic Scenes 2019, development set (SeNoT-Net's data).

Layout (root = the extracted zips, or the single folder `TAU-urban-acoustic-scenes-2019-development/` in it):
    audio/<scene>-<city>-<location>-<segment>-a.wav     48 kHz, 24-bit stereo, 10 s
    meta.csv                                           TAB, header `filename scene_label identifier source_label`
    evaluation_setup/fold1_{train,evaluate}.csv        TAB, header `filename scene_label`
    evaluation_setup/fold1_test.csv                    `filename` only (not used: same clips as evaluate)

Split: fold1_train -> train (9,185), fold1_evaluate -> test (4,185); clips in neither fold are not listed.
Option `validation`: "none" (default, faithful: the original selects its model on the evaluate fold) or
"holdout" (per scene, `validation_fraction` 0.1 of the train recording locations -- meta.csv `identifier` --
move to validation, chosen by a stable hash). group = identifier; clip_id = file name without `.wav`.
Classes: sorted names, which is also the original's order (pandas category codes of scene_label).
"""
from __future__ import annotations

from soundbench.datasets.common import scene_dataset

NAME = "dcase2019_task1a"
FILENAME_BASE = "TAU-urban-acoustic-scenes-2019-development"
SOURCE_URL = "https://zenodo.org/record/2589280/files/"
# (suffix, bytes, md5) from DCASE-REPO/dcase_util TAUUrbanAcousticScenes_2019_DevelopmentSet
PACKAGES = (
    (".doc.zip", 11299, "1f6879544e80da70099a191613e7e51f"),
    (".meta.zip", 156863, "09782f2097e4735687af73c44919329c"),
    (".audio.1.zip", 1657550587, "aca4ebfd9ed03d5f747d6ba8c24bc728"),
    (".audio.2.zip", 1666219450, "c4f170408ce77c8c70c532bf268d7be0"),
    (".audio.3.zip", 1817901591, "c7214a07211f10f3250290d05e72c37e"),
    (".audio.4.zip", 1821710642, "a6a62110f6699cf4432072acb1dffda6"),
    (".audio.5.zip", 1803118466, "091a0b6d3c84b8e60e46940aa7d4a8a0"),
    (".audio.6.zip", 1789566029, "114f4ca13e074391b98a1cfd8140de65"),
    (".audio.7.zip", 1747953866, "5951dd2968f7a514e2afbe279c4f060d"),
    (".audio.8.zip", 1728724513, "b0b63dc95b327e1509857c8d8a663cc3"),
    (".audio.9.zip", 1667106209, "3c32a693a6b111ffb957be3c1dd22e9b"),
    (".audio.10.zip", 1632636175, "0ffbf60006da520cc761fb74c878b98b"),
    (".audio.11.zip", 1671793546, "599055d93b4c11057c29be2df54538d4"),
    (".audio.12.zip", 1672592150, "98b8d162ff3665695c4c910e6c372cc8"),
    (".audio.13.zip", 1673481614, "a356c08b1a5a21d433eba37ef87587f4"),
    (".audio.14.zip", 1666137450, "f8969771e7faf7dd471d1cf78b0cf011"),
    (".audio.15.zip", 1675127004, "4758c4b0fb7484faa632266e78850820"),
    (".audio.16.zip", 1648240966, "a18acad9ede8ea76574216feb887f0bc"),
    (".audio.17.zip", 1698414214, "1af7703484632f340da5c33662dc9632"),
    (".audio.18.zip", 1731093704, "b67402bf3e08f4da394a7c18756c0fd2"),
    (".audio.19.zip", 1745153640, "035db315f19106eb848b6f9b32bcc47c"),
    (".audio.20.zip", 1774038704, "9cb28c74911bf8a3eadcf53f50a5b5d6"),
    (".audio.21.zip", 1333808800, "0e44ed85c88ec036a9725b4dd1dfaea0"),
)


DATASET = scene_dataset(name=NAME, top=FILENAME_BASE, url=SOURCE_URL, packages=PACKAGES,
                        title="TAU Urban Acoustic Scenes 2019, development (DCASE 2019 Task 1A)",
                        fold_ext="csv", fold_header=True)
